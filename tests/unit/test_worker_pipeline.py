"""Batch k+1's outputs are sent before batch k's acknowledgements are awaited; offsets are still
committed in batch order, each batch only after its own outputs were acknowledged."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import orjson
import pytest

from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import InMemoryHealth, InMemorySink, InMemorySource, raw
from stream_ensemble.types import SourceRef
from stream_ensemble.worker import Worker


def msg(i: int, features: dict) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "entity_id": f"u{i}", "timestamp": 1.0, "features": features})


class LoggingSource(InMemorySource):
    """Records each commit (highest offset + 1) in the sink's call log."""

    def __init__(self, messages: Sequence, sink: InMemorySink) -> None:
        super().__init__(messages)
        self.sink = sink

    def commit(self, refs: Sequence[SourceRef], asynchronous: bool = False) -> None:
        super().commit(refs, asynchronous)
        self.sink.calls.append(("commit", max(r.offset for r in refs) + 1))


def test_next_batch_is_sent_before_the_previous_is_confirmed_and_commits_follow_their_acks(
        small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    sink = InMemorySink()
    source = LoggingSource([raw(msg(i, records[i]), offset=i) for i in range(30)], sink)
    worker = Worker(source, sink, ScoringService(small_ensemble, InMemoryHealth(), None), KafkaConfig(batch_size=10))
    while worker.run_once():
        pass
    worker.settle(asynchronous=False)
    calls = sink.calls
    sends = {b: [k for k, c in enumerate(calls) if c == ("send", b)] for b in (1, 2, 3)}
    confirms = {b: calls.index(("confirm", b)) for b in (1, 2, 3)}
    commits = [(k, c[1]) for k, c in enumerate(calls) if c[0] == "commit"]
    assert [o for _, o in commits] == [10, 20, 30], "one commit per batch, in batch order"
    # pipelined: batch k+1 is on its way before batch k's acknowledgements are awaited
    assert max(sends[2]) < confirms[1] and max(sends[3]) < confirms[2]
    # at-least-once: each commit comes after the confirmation of its own batch
    for (k, offset), b in zip(commits, (1, 2, 3)):
        assert confirms[b] < k, f"offsets up to {offset} committed before batch {b} was acknowledged"
    assert len(sink.delivered) == 30


def test_an_unacknowledged_batch_blocks_the_commit_of_later_acknowledged_ones(
        small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    # Batch 1's outputs are never acknowledged, batch 2's are: nothing may be committed, since
    # committing batch 2's offsets would also commit batch 1's (same partition, lower offsets).
    sink = InMemorySink(fail_batches={1})
    source = InMemorySource([raw(msg(i, records[i]), offset=i) for i in range(30)])
    worker = Worker(source, sink, ScoringService(small_ensemble, InMemoryHealth(), None),
                    KafkaConfig(batch_size=10, delivery_timeout_s=1.0))
    assert worker.run_once() == 10
    errors: list[BaseException] = []

    def second() -> None:  # batch 2 scored and sent, then waits for batch 1
        try:
            worker.run_once()
        except KafkaAdapterError as exc:  # the stop below, with batch 1 still unacknowledged
            errors.append(exc)

    waiting = threading.Thread(target=second)
    waiting.start()
    time.sleep(1.5)
    assert waiting.is_alive(), "the worker waits for batch 1's acknowledgements"
    assert ("send", 2) in sink.calls and sink.flushes >= 2
    assert source.committed == {}, "nothing committed while batch 1 is unacknowledged"
    worker.stop()
    waiting.join(10.0)
    assert not waiting.is_alive() and errors
    with pytest.raises(KafkaAdapterError):
        worker.settle()  # still batch 1 first: never batch 2 alone
    assert source.committed == {}
    with pytest.raises(RuntimeError, match="not acknowledged"):
        worker.run_once()
    # once batch 1 is acknowledged, both are committed, in order
    sink.fail_batches.clear()
    worker._failed = None
    worker.settle(asynchronous=False)
    assert source.committed == {("features", 0): 20}
