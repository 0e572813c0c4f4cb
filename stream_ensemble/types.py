"""Shared value types and array aliases.

Canonical shapes (every array names its axes):

* ``Proba``   -- ``(n_events, n_models, n_classes)`` float64 member probabilities.
  Entries of members that did not run for a row are ``NaN``.
* ``Mask``    -- ``(n_events, n_models)`` bool, ``True`` where the member's output is present.
* ``Weights`` -- ``(n_models,)`` or ``(n_events, n_models)`` float64, non-negative.
* ``Matrix``  -- ``(n_events, n_features)`` float64 model input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Proba = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Weights = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@dataclass(slots=True)
class Event:
    """A decoded, validated feature event (treat as read-only: not frozen because a frozen
    dataclass's ``__init__`` costs 3x as much, once per event).

    Parameters
    ----------
    event_id : str
        Producer-assigned unique id; consumers use it to drop duplicates.
    entity_id : str
        The entity the features describe; also the Kafka key (routing is sticky by it).
    timestamp : float
        Event time, seconds since the epoch.
    features : dict
        Feature name -> number, string or ``None`` (missing).
    """

    event_id: str
    entity_id: str
    timestamp: float
    features: dict[str, Any]
    explain: str | None = None


class SourceRef(NamedTuple):
    """Where a raw message came from (for logs, DLQ records and offset commits).

    A named tuple (immutable, hashable): built once per consumed message, it costs a third of
    a frozen dataclass.
    """

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class RawMessage:
    """One message as read from the source: original bytes plus position."""

    value: bytes | None
    key: bytes | None
    ref: SourceRef
    produce_time_ms: int | None = None


@dataclass(slots=True)
class DeadLetter:
    """A message that could not be scored, with the reason (goes to the DLQ topic)."""

    raw: RawMessage
    reason: str
    error_type: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Undelivered:
    """An output the broker (or the client) refused for good: too large, invalid...

    The worker re-routes it (a scored event to the DLQ, a DLQ record without its original)
    instead of stopping; retriable failures never appear here, the sink retries them.
    """

    topic: str
    key: bytes | None
    value: bytes
    reason: str


@dataclass(slots=True)
class BatchResult:
    """Output of the engine for one batch.

    ``scored`` holds ``(key, encoded scored event, source ref)`` triples ready to produce;
    ``shadow`` the same for shadow arms' scores of events already in ``scored`` (not counted).
    """

    scored: list[tuple[bytes, bytes, SourceRef]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0
    # The selection (members in use) the batch was scored with; metrics count changes.
    selection_id: str = ""
    shadow: list[tuple[bytes, bytes, SourceRef]] = field(default_factory=list)
    # Events per (experiment, arm) routed in this batch (shadow arms included); metrics count them.
    arms: dict[tuple[str, str], int] = field(default_factory=dict)
    # Scored events per degraded reason (member_timeout, member_error, breaker_open, prior_only).
    degraded: dict[str, int] = field(default_factory=dict)
