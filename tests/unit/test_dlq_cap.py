"""DLQ records are capped below the producer's limit; the original is truncated, never lost silently."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jsonschema
import orjson

from stream_ensemble.adapters.kafka_sink import MESSAGE_MAX_BYTES
from stream_ensemble.config import KafkaConfig
from stream_ensemble.serving.codec import DLQ_MAX_BYTES, DLQ_MAX_KEY_BYTES, dlq_key, dlq_record
from stream_ensemble.testing import raw
from stream_ensemble.types import DeadLetter, RawMessage, SourceRef

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "dlq_record.json").read_text())


def test_small_original_is_kept_whole_with_size_and_digest() -> None:
    original = b'{"event_id": "e1", "features": {oops'
    rec = orjson.loads(dlq_record(DeadLetter(raw(original), "not valid JSON", "invalid_json")))
    jsonschema.validate(rec, SCHEMA)
    assert base64.b64decode(rec["original"]) == original and rec["original_truncated"] is False
    assert rec["original_size"] == len(original) and rec["original_sha256"] == hashlib.sha256(original).hexdigest()


def test_800kb_event_gives_a_record_under_the_cap_and_the_producer_limit() -> None:
    # the case: base64 + envelope of an ~800 KB value was ~1.07 MB, over the 1 MB limit
    original = b'{"event_id": "big", "features": {"x": "' + b"A" * 800_000 + b'"'
    encoded = dlq_record(DeadLetter(raw(original), "x" * 10_000, "invalid_json", "e" * 5000))
    assert len(encoded) <= DLQ_MAX_BYTES < MESSAGE_MAX_BYTES
    rec = orjson.loads(encoded)
    jsonschema.validate(rec, SCHEMA)
    kept = base64.b64decode(rec["original"])
    assert rec["original_truncated"] is True and original.startswith(kept)
    assert len(kept) > DLQ_MAX_BYTES * 0.7, "the cap is used, not thrown away"
    assert rec["original_size"] == len(original) and rec["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert len(rec["reason"]) == 2000 and len(rec["event_id"]) == 256


def test_cap_is_respected_at_any_setting_and_without_original() -> None:
    original = bytes(range(256)) * 400
    for cap in (4096, 10_000, 65_536):
        encoded = dlq_record(DeadLetter(raw(original), "bad", "invalid_json"), max_bytes=cap)
        assert len(encoded) <= cap
    bare = orjson.loads(dlq_record(DeadLetter(raw(original), "bad", "invalid_json"), keep_original=False))
    assert bare["original"] == "" and bare["original_truncated"] is True and bare["original_size"] == len(original)


def test_oversize_key_is_truncated_in_the_record_and_hashed_as_the_kafka_key() -> None:
    key = b"k" * (DLQ_MAX_KEY_BYTES * 3)
    msg = RawMessage(value=b"x", key=key, ref=SourceRef("features", 0, 1))
    rec = orjson.loads(dlq_record(DeadLetter(msg, "bad", "invalid_json")))
    assert base64.b64decode(rec["original_key"]) == key[:DLQ_MAX_KEY_BYTES] and rec["original_truncated"] is True
    assert dlq_key(key) == hashlib.sha256(key).hexdigest().encode() and dlq_key(b"short") == b"short"
    assert dlq_key(None) is None


def test_cap_setting_is_checked() -> None:
    import pytest

    from stream_ensemble.errors import ConfigError

    assert KafkaConfig().dlq_max_bytes == DLQ_MAX_BYTES
    for bad in (100, 2_000_000):
        with pytest.raises(ConfigError, match="DLQ record cap"):
            KafkaConfig(dlq_max_bytes=bad)
