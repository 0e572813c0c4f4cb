"""The seams between the engine and the outside world (Protocols only).

The engine depends on these, never on a concrete adapter; unit tests use the in-memory
fakes in :mod:`stream_ensemble.testing`, integration tests the real Redis and Kafka adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from stream_ensemble.types import BatchResult, RawMessage, SourceRef, Undelivered


class PredictionCache(Protocol):
    """Key-value cache of encoded scores. Advisory: failures return misses, never raise."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order (``None`` = miss)."""
        ...

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """Store values with a TTL (one round trip)."""
        ...


class HealthStore(Protocol):
    """Which members operators marked down. Advisory: on failure the last known state."""

    def down(self) -> frozenset[str]:
        """Member names or ``name@vN`` tags currently marked down."""
        ...


class EventSource(Protocol):
    """Batches of raw messages plus commit-after-processing."""

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        """Up to ``max_messages`` messages (possibly none)."""
        ...

    def commit(self, refs: Sequence[SourceRef], asynchronous: bool = False) -> None:
        """Commit, per partition, the offset after the highest of ``refs``.

        Synchronous unless ``asynchronous``; an asynchronous failure is logged by the source.
        """
        ...


class EventSink(Protocol):
    """Produces messages and reports when the broker acknowledged all of a batch's messages."""

    def send(self, topic: str, key: bytes | None, value: bytes, batch: int = 0) -> None:
        """Queue one message of ``batch`` (a message refused at once is reported by that
        batch's next flush)."""
        ...

    def flush_and_confirm(self, timeout_s: float, batch: int | None = None) -> list[Undelivered]:
        """Block until every queued message of ``batch`` (``None``: every queued message) is
        acknowledged or refused for good.

        Returns that batch's refused ones (retriable failures are retried, not returned);
        raises :class:`~stream_ensemble.errors.KafkaAdapterError` when ``timeout_s`` passed
        with messages of the batch still unacknowledged.
        """
        ...


class BatchObserver(Protocol):
    """Watches the worker loop (metrics, probes); every call must be cheap and never raise."""

    def tick(self) -> None:
        """The loop is alive (once per iteration, with or without a batch)."""
        ...

    def batch(self, messages: Sequence[RawMessage], result: BatchResult, scoring_s: float, batch_s: float) -> None:
        """A batch was produced, acknowledged and committed (or its commit failed harmlessly)."""
        ...


class DeployStore(Protocol):
    """Where a fleet's served version is set (``se:deploy:<ensemble>``). Advisory: a failed
    read returns the last known target, a failed write is logged, neither raises."""

    def target(self) -> str | None:
        """The ``name@vN`` the fleet should serve, or ``None`` when unset."""
        ...

    def refused(self, tag: str, reason: str) -> None:
        """Record that this worker refused ``tag`` and why (read by ``deploy status``)."""
        ...
