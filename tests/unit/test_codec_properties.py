"""Property tests of the decoder: any bytes either decode to an Event or raise DecodeError.

Never another exception (a crash in decoding would stop the worker on one bad message), and
what decodes satisfies the contract the encoder relies on.
"""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_ensemble.serving.codec import MAX_TIMESTAMP, DecodeError, decode_event
from stream_ensemble.types import Event

KINDS = {"empty", "invalid_json", "schema"}

# orjson writes 64-bit integers only (it reads longer ones as floats: the bytes test covers those).
_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_scalars = st.none() | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)
_events = st.fixed_dictionaries(
    {"event_id": st.text(max_size=130) | _json, "entity_id": st.text(max_size=10) | _json,
     "timestamp": st.floats(allow_nan=False, allow_infinity=False) | _ints | _json,
     "features": st.dictionaries(st.text(max_size=12), _scalars, max_size=6) | _json},
    optional={"explain": st.sampled_from(["none", "summary", "full", "loud"]) | _json},
)


def _check(value: bytes | None) -> None:
    try:
        ev = decode_event(value)
    except DecodeError as exc:
        assert exc.kind in KINDS and exc.reason and "\n" not in exc.reason
        return
    assert isinstance(ev, Event)
    assert 1 <= len(ev.event_id) <= 128 and 1 <= len(ev.entity_id) <= 256
    assert math.isfinite(ev.timestamp) and 0 <= ev.timestamp <= MAX_TIMESTAMP
    assert ev.features and all(v is None or type(v) in (int, float, str) for v in ev.features.values())
    assert ev.explain in (None, "none", "summary", "full")


_numbers = st.sampled_from([b"1e308", b"-1e308", b"1e400", b"NaN", b"Infinity", b"1e300", b"123456789012345678901234567890",
                             b'"17.99"', b'"nan"', b"-0", b"0.0e0", b"true", b"null"])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | st.none())
def test_any_bytes_decode_or_raise_decode_error(value: bytes | None) -> None:
    _check(value)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_any_json_document_decodes_or_raises_decode_error(doc: object) -> None:
    _check(orjson.dumps(doc))


@settings(max_examples=400, deadline=None)
@given(_events)
def test_event_shaped_documents_decode_or_raise_decode_error(doc: dict[str, object]) -> None:
    _check(orjson.dumps(doc))


@settings(max_examples=300, deadline=None)
@given(_numbers, _numbers)
def test_edge_numbers_decode_or_raise_decode_error(ts: bytes, value: bytes) -> None:
    _check(b'{"event_id":"e","entity_id":"u","timestamp":' + ts + b',"features":{"a":' + value + b"}}")


@settings(max_examples=200, deadline=None)
@given(_events, st.integers(min_value=1, max_value=40))
def test_truncated_events_raise_decode_error(doc: dict[str, object], cut: int) -> None:
    data = orjson.dumps(doc)
    _check(data[: max(len(data) - cut, 0)])
