"""Wire format: decode feature events, encode scored events and DLQ records (orjson).

Validation is hand-written to match ``schemas/feature_event.json`` exactly (a jsonschema
validator per event costs ~50x more); ``tests/unit/test_codec.py`` checks that the codec and
the schema accept and reject the same messages, so the two cannot drift apart silently.
No I/O here: the engine uses it on bytes it is given.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

from stream_ensemble.errors import SchemaError
from stream_ensemble.types import DeadLetter, Event

SCHEMA_VERSION = 1
#: Scored events of a K > 2 class ensemble: version 2 adds ``probabilities`` (class -> p) and
#: reads ``probability`` / ``model_probabilities`` as those of the decided class. Binary
#: ensembles keep writing version 1 unchanged.
MULTICLASS_SCHEMA_VERSION = 2
_EXPLAIN = frozenset(("none", "summary", "full"))
_FEATURE_TYPES = frozenset((int, float, str, type(None)))


class DecodeError(SchemaError):
    """A message cannot become an :class:`Event`; ``kind`` names the failure class."""

    def __init__(self, kind: str, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.event_id = event_id


def decode_event(value: bytes | None) -> Event:
    """Decode and validate one feature event.

    Parameters
    ----------
    value : bytes or None
        Raw Kafka message value.

    Returns
    -------
    Event

    Raises
    ------
    DecodeError
        Not JSON, not an object, or a field violates the feature-event schema. The
        reason names the field.
    """
    if value is None:
        raise DecodeError("empty", "message has no value (tombstone)")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("schema", f"event must be a JSON object, got {type(doc).__name__}")
    event_id = doc.get("event_id")
    eid = event_id if isinstance(event_id, str) else None
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        raise DecodeError("schema", "event_id must be a string of 1..128 characters", eid)
    entity_id = doc.get("entity_id")
    if not isinstance(entity_id, str) or not 1 <= len(entity_id) <= 256:
        raise DecodeError("schema", "entity_id must be a string of 1..256 characters", eid)
    ts = doc.get("timestamp")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts < 0:
        raise DecodeError("schema", "timestamp must be a number >= 0 (seconds since the epoch)", eid)
    features = doc.get("features")
    if not isinstance(features, dict) or not features:
        raise DecodeError("schema", "features must be a non-empty object", eid)
    # Exact class test: one set lookup per value, and bool (a subclass of int) is rejected.
    for name, v in features.items():
        if v.__class__ not in _FEATURE_TYPES:
            raise DecodeError("schema", f"feature {name!r} must be a number, string or null", eid)
    explain = doc.get("explain")
    if explain is not None and explain not in _EXPLAIN:
        raise DecodeError("schema", "explain must be one of none, summary, full", eid)
    return Event(event_id, entity_id, float(ts), features, explain)


def schema_version_for(n_classes: int) -> int:
    """Scored-event schema version for an ensemble with ``n_classes`` classes."""
    return SCHEMA_VERSION if n_classes == 2 else MULTICLASS_SCHEMA_VERSION


def encode(doc: dict[str, Any]) -> bytes:
    """Serialise a JSON-ready dict (numpy scalars allowed)."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def dlq_record(dead: DeadLetter) -> bytes:
    """Encode a dead letter per ``schemas/dlq_record.json`` (original bytes base64-encoded)."""
    raw = dead.raw
    return encode(
        {
            "schema_version": SCHEMA_VERSION,
            "original": base64.b64encode(raw.value or b"").decode("ascii"),
            "original_key": None if raw.key is None else base64.b64encode(raw.key).decode("ascii"),
            "reason": dead.reason,
            "error_type": dead.error_type,
            "event_id": dead.event_id,
            "source": {"topic": raw.ref.topic, "partition": raw.ref.partition, "offset": raw.ref.offset},
            "dead_lettered_at": time.time(),
        }
    )
