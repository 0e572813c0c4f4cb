"""Codec: decoding and validation agree with schemas/feature_event.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from stream_ensemble.serving.codec import DecodeError, decode_event, dlq_record
from stream_ensemble.testing import raw
from stream_ensemble.types import DeadLetter

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


GOOD = {"event_id": "e1", "entity_id": "u1", "timestamp": 1.7e9, "features": {"a": 1.5, "b": "x", "c": None}}

CASES = [
    (GOOD, True),
    ({**GOOD, "explain": "full"}, True),
    ({**GOOD, "explain": "loud"}, False),
    ({k: v for k, v in GOOD.items() if k != "event_id"}, False),
    ({**GOOD, "event_id": ""}, False),
    ({**GOOD, "event_id": 7}, False),
    ({**GOOD, "entity_id": None}, False),
    ({**GOOD, "timestamp": "now"}, False),
    ({**GOOD, "timestamp": -1}, False),
    ({**GOOD, "timestamp": True}, False),
    ({**GOOD, "features": {}}, False),
    ({**GOOD, "features": [1, 2]}, False),
    ({**GOOD, "features": {"a": [1]}}, False),
    ({**GOOD, "features": {"a": {"x": 1}}}, False),
    ({**GOOD, "features": {"a": True}}, False),
    ([1, 2], False),
]


@pytest.mark.parametrize(("doc", "valid"), CASES)
def test_codec_and_schema_agree(doc: object, valid: bool) -> None:
    validator = jsonschema.Draft202012Validator(schema("feature_event"))
    assert validator.is_valid(doc) is valid
    if valid:
        ev = decode_event(orjson.dumps(doc))
        assert ev.event_id == doc["event_id"] and ev.features == doc["features"]  # type: ignore[index]
    else:
        with pytest.raises(DecodeError):
            decode_event(orjson.dumps(doc))


def test_invalid_json_and_tombstone_have_kinds() -> None:
    with pytest.raises(DecodeError) as e:
        decode_event(b'{"event_id": ')
    assert e.value.kind == "invalid_json"
    with pytest.raises(DecodeError) as e:
        decode_event(None)
    assert e.value.kind == "empty"


def test_schema_error_keeps_event_id_and_names_field() -> None:
    with pytest.raises(DecodeError) as e:
        decode_event(orjson.dumps({**GOOD, "timestamp": "x"}))
    assert e.value.event_id == "e1"
    assert "timestamp" in e.value.reason


def test_dlq_record_keeps_original_bytes_and_matches_schema() -> None:
    original = b'\xff\xfe not json at all'
    rec = orjson.loads(dlq_record(DeadLetter(raw(original, offset=42), "not valid JSON", "invalid_json")))
    jsonschema.validate(rec, schema("dlq_record"))
    assert base64.b64decode(rec["original"]) == original
    assert rec["source"] == {"topic": "features", "partition": 0, "offset": 42}
    assert rec["reason"] == "not valid JSON"


@pytest.mark.parametrize("value", [b"", b"  \n"])
def test_an_empty_value_is_typed_empty(value: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode_event(value)
    assert e.value.kind == "empty"


@pytest.mark.parametrize(("doc", "valid"), [
    ({**GOOD, "timestamp": 1e300}, False), ({**GOOD, "timestamp": 32503680001}, False),
    ({**GOOD, "timestamp": 32503680000}, True), ({**GOOD, "explain": ["full"]}, False),
])
def test_timestamp_bound_and_explain_type_agree_with_schema(doc: dict, valid: bool) -> None:
    test_codec_and_schema_agree(doc, valid)
