"""In-memory fakes for every port, for unit tests of small pieces.

They implement the Protocols in :mod:`stream_ensemble.ports` for real (no MagicMock), so an
interface mismatch fails the tests. They never prove a feature that touches Kafka or
Redis: the integration tests do that against the real servers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from stream_ensemble.types import RawMessage, SourceRef, Undelivered


class InMemoryCache:
    """Dict-backed :class:`~stream_ensemble.ports.PredictionCache` (TTL ignored)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.gets = 0

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.gets += 1
        return [self.data.get(k) for k in keys]

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        self.data.update(items)


class InMemoryHealth:
    """:class:`~stream_ensemble.ports.HealthStore` whose down set tests change directly."""

    def __init__(self, down: set[str] | None = None) -> None:
        self.down_set = set(down or ())

    def down(self) -> frozenset[str]:
        return frozenset(self.down_set)


class InMemorySource:
    """:class:`~stream_ensemble.ports.EventSource` over a list of messages."""

    def __init__(self, messages: Sequence[RawMessage], fail_commits: int = 0) -> None:
        self.pending = list(messages)
        self.committed: dict[tuple[str, int], int] = {}
        self.fail_commits = fail_commits

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        batch, self.pending = self.pending[:max_messages], self.pending[max_messages:]
        return batch

    def commit(self, refs: Sequence[SourceRef], asynchronous: bool = False) -> None:
        if self.fail_commits:
            from stream_ensemble.errors import KafkaAdapterError

            self.fail_commits -= 1
            raise KafkaAdapterError("commit failed: partition revoked (fake)")
        for r in refs:
            key = (r.topic, r.partition)
            self.committed[key] = max(self.committed.get(key, 0), r.offset + 1)


class InMemorySink:
    """:class:`~stream_ensemble.ports.EventSink` that can be told to fail delivery.

    ``fail``: every flush times out; ``fail_batches``: flushes of these batches time out.
    ``refuse(topic, key, value)``: a reason to refuse that message for good (as a broker
    refuses an oversize record), or None to deliver it. ``calls`` records ``("send", batch)``
    and ``("confirm", batch)`` in order (a confirm that timed out is not recorded).
    """

    def __init__(self, fail: bool = False,
                 refuse: Callable[[str, bytes | None, bytes], str | None] | None = None,
                 fail_batches: set[int] | None = None) -> None:
        self.queued: list[tuple[str, bytes | None, bytes, int]] = []
        self.delivered: list[tuple[str, bytes | None, bytes]] = []
        self.fail = fail
        self.fail_batches = fail_batches if fail_batches is not None else set()
        self.refuse = refuse
        self.flushes = 0
        self.calls: list[tuple[str, int | None]] = []

    def send(self, topic: str, key: bytes | None, value: bytes, batch: int = 0) -> None:
        self.queued.append((topic, key, value, batch))
        self.calls.append(("send", batch))

    def flush_and_confirm(self, timeout_s: float, batch: int | None = None) -> list[Undelivered]:
        from stream_ensemble.errors import KafkaAdapterError

        self.flushes += 1
        mine = [q for q in self.queued if batch is None or q[3] == batch]
        if self.fail or any(q[3] in self.fail_batches for q in mine):
            raise KafkaAdapterError(f"{len(mine)} messages not acknowledged (fake)")
        refused = []
        for topic, key, value, _ in mine:
            reason = self.refuse(topic, key, value) if self.refuse is not None else None
            if reason is None:
                self.delivered.append((topic, key, value))
            else:
                refused.append(Undelivered(topic, key, value, reason))
        self.queued = [q for q in self.queued if not (batch is None or q[3] == batch)]
        self.calls.append(("confirm", batch))
        return refused


def raw(value: bytes | None, offset: int = 0, topic: str = "features", partition: int = 0) -> RawMessage:
    """A :class:`RawMessage` at a position, for tests."""
    return RawMessage(value=value, key=None, ref=SourceRef(topic, partition, offset))


class InMemoryDeploys:
    """:class:`~stream_ensemble.ports.DeployStore` whose target tests set directly."""

    def __init__(self, target: str | None = None) -> None:
        self.target_tag = target
        self.refusals: dict[str, str] = {}

    def target(self) -> str | None:
        return self.target_tag

    def refused(self, tag: str, reason: str) -> None:
        self.refusals[tag] = reason


class FaultyEstimator:
    """A fitted classifier that misbehaves on purpose, for fault tests and ``bench faults``.

    It wraps a real fitted estimator and, on every ``predict_proba`` call, does one thing
    wrong. It is pickled into a throwaway copy of a registry (never a production path).

    Parameters
    ----------
    inner : estimator
        Fitted classifier with ``predict_proba`` and ``classes_``.
    mode : {"raise", "nan", "out_of_range", "sleep"}
        ``raise``: raises ``RuntimeError``; ``nan``: NaN for every row; ``out_of_range``:
        probabilities 1.5 and -0.5 (outside [0, 1], rows still summing to 1); ``sleep``:
        the inner output after sleeping ``sleep_s`` seconds (a member past its deadline).
    sleep_s : float
    """

    MODES = ("raise", "nan", "out_of_range", "sleep")

    def __init__(self, inner: object, mode: str, sleep_s: float = 2.0) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.inner = inner
        self.mode = mode
        self.sleep_s = sleep_s

    @property
    def classes_(self) -> object:
        """The inner estimator's classes."""
        return getattr(self.inner, "classes_")

    def predict_proba(self, X: object) -> object:
        """Shape (n_events, n_classes), wrong in the way ``mode`` says."""
        import time

        import numpy as np

        if self.mode == "raise":
            raise RuntimeError("FaultyEstimator: injected failure")
        out = np.asarray(getattr(self.inner, "predict_proba")(X), dtype=np.float64)
        if self.mode == "nan":
            return np.full_like(out, np.nan)
        if self.mode == "out_of_range":
            bad = np.full_like(out, -0.5 / max(out.shape[1] - 1, 1))
            bad[:, 0] = 1.5
            return bad
        time.sleep(self.sleep_s)
        return out
