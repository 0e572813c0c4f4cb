"""Wire format: decode feature events, encode scored events and DLQ records (orjson).

Validation is hand-written to match ``schemas/feature_event.json`` exactly (a jsonschema
validator per event costs ~50x more); ``tests/unit/test_codec.py`` checks that the codec and
the schema accept and reject the same messages, so the two cannot drift apart silently.
No I/O here: the engine uses it on bytes it is given.
"""

from __future__ import annotations

import base64
import hashlib
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
#: Latest accepted event time, 3000-01-01T00:00:00Z: a larger value is a unit error
#: (milliseconds or nanoseconds) or garbage (1e300), not a time.
MAX_TIMESTAMP = 32_503_680_000.0


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
        reason names the field. Never another exception, whatever the bytes
        (``tests/unit/test_codec_properties.py``).

    Notes
    -----
    A string is a valid feature value here (categorical features); a string given for a
    *numeric* feature is refused when the batch is encoded (``feature_type``): a string is
    never a number, ``"17.99"`` and ``"nan"`` included.
    """
    if value is None:
        raise DecodeError("empty", "message has no value (tombstone)")
    if not value.strip():
        raise DecodeError("empty", f"message value is empty ({len(value)} bytes of whitespace)")
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
    # orjson refuses NaN and numbers that overflow a double, so a float here is finite.
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not 0 <= ts <= MAX_TIMESTAMP:
        raise DecodeError("schema", f"timestamp must be a number in [0, {MAX_TIMESTAMP:.0f}] (seconds since the epoch, "
                          "before the year 3000)", eid)
    features = doc.get("features")
    if not isinstance(features, dict) or not features:
        raise DecodeError("schema", "features must be a non-empty object", eid)
    # Exact class test (bool, a subclass of int, is rejected): the classes of all values in one
    # C-level pass; the per-value loop only runs to name the offending feature.
    if not set(map(type, features.values())) <= _FEATURE_TYPES:
        for name, v in features.items():
            if v.__class__ not in _FEATURE_TYPES:
                raise DecodeError("schema", f"feature {name[:200]!r} must be a number, string or null", eid)
    explain = doc.get("explain")
    if explain is not None and (explain.__class__ is not str or explain not in _EXPLAIN):  # a list is unhashable
        raise DecodeError("schema", "explain must be one of none, summary, full", eid)
    return Event(event_id, entity_id, float(ts), features, explain)


def schema_version_for(n_classes: int) -> int:
    """Scored-event schema version for an ensemble with ``n_classes`` classes."""
    return SCHEMA_VERSION if n_classes == 2 else MULTICLASS_SCHEMA_VERSION


def encode(doc: dict[str, Any]) -> bytes:
    """Serialise a JSON-ready dict (numpy scalars allowed)."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


#: Default cap of one encoded DLQ record, bytes: below librdkafka's ``message.max.bytes``
#: (1,000,000, which the producer sets explicitly) with room for the key and the protocol.
DLQ_MAX_BYTES = 900_000
#: Longest original key and reason kept in a DLQ record (a key or a feature name can be huge).
DLQ_MAX_KEY_BYTES = 1024
DLQ_MAX_REASON_CHARS = 2000


def dlq_record(dead: DeadLetter, max_bytes: int = DLQ_MAX_BYTES, keep_original: bool = True) -> bytes:
    """Encode a dead letter per ``schemas/dlq_record.json``, at most ``max_bytes`` long.

    The original value is base64-encoded byte for byte when the record fits; otherwise it
    is truncated (``original_truncated: true``) so that the record fits. ``original_size``
    and ``original_sha256`` always describe the whole original, so it can be matched with
    the input topic. Keys longer than :data:`DLQ_MAX_KEY_BYTES` are truncated the same way.

    Parameters
    ----------
    dead : DeadLetter
    max_bytes : int
        Cap of the encoded record (at least 4,096).
    keep_original : bool
        False: no original bytes at all (the fallback when the broker refused the record).

    Returns
    -------
    bytes
    """
    raw = dead.raw
    value = raw.value or b""
    key = raw.key
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "original": "",
        "original_key": None if key is None else base64.b64encode(key[:DLQ_MAX_KEY_BYTES]).decode("ascii"),
        "original_size": len(value),
        "original_sha256": hashlib.sha256(value).hexdigest(),
        "original_truncated": False,
        "reason": dead.reason[:DLQ_MAX_REASON_CHARS],
        "error_type": dead.error_type,
        "event_id": None if dead.event_id is None else dead.event_id[:256],
        "source": {"topic": raw.ref.topic, "partition": raw.ref.partition, "offset": raw.ref.offset},
        "dead_lettered_at": time.time(),
    }
    # ``original`` is "" in the envelope and 4 bytes of base64 per 3 of input once filled.
    room = max(max_bytes - len(encode({**doc, "original_truncated": True})), 0) // 4 * 3
    kept = value[:room] if keep_original else b""
    key_cut = key is not None and len(key) > DLQ_MAX_KEY_BYTES
    doc["original"] = base64.b64encode(kept).decode("ascii")
    doc["original_truncated"] = len(kept) < len(value) or key_cut
    return encode(doc)


def dlq_key(key: bytes | None) -> bytes | None:
    """Kafka key of a DLQ record: the original key, or its SHA-256 (hex) when longer than
    :data:`DLQ_MAX_KEY_BYTES` (an oversize key would make the record too large)."""
    if key is None or len(key) <= DLQ_MAX_KEY_BYTES:
        return key
    return hashlib.sha256(key).hexdigest().encode()
