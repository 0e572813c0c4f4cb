"""A record the broker refuses for good never stops the worker: it is re-routed, then committed."""

from __future__ import annotations

import base64

import orjson

from stream_ensemble.config import KafkaConfig
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import InMemoryHealth, InMemorySink, InMemorySource, raw
from stream_ensemble.worker import Worker


def msg(i: int, features: dict) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "entity_id": f"u{i}", "timestamp": 1.0, "features": features})


def run_all(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_refused_scored_event_is_dead_lettered_and_the_batch_committed(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    source = InMemorySource([raw(msg(i, records[i]), offset=i) for i in range(30)])
    # the broker refuses the scored events of e3 and e17 (as it refuses a record over its size limit)
    sink = InMemorySink(refuse=lambda t, k, v: "Broker: Message size too large"
                        if t == "scores" and (b'"e3"' in v or b'"e17"' in v) else None)
    worker = Worker(source, sink, ScoringService(small_ensemble, InMemoryHealth(), None), KafkaConfig(batch_size=10))
    run_all(worker)
    assert source.committed == {("features", 0): 30}
    scores = [orjson.loads(v)["event_id"] for t, _, v in sink.delivered if t == "scores"]
    dlq = [orjson.loads(v) for t, _, v in sink.delivered if t == "features.dlq"]
    assert len(scores) == 28 and {"e3", "e17"}.isdisjoint(scores)
    assert sorted(d["event_id"] for d in dlq) == ["e17", "e3"]
    assert all(d["error_type"] == "produce_error" and "too large" in d["reason"] for d in dlq)
    assert base64.b64decode(next(d for d in dlq if d["event_id"] == "e3")["original"]) == msg(3, records[3])
    assert worker.stats.scored == 28 and worker.stats.dead_lettered == 2 and worker.stats.rerouted == 2


def test_refused_dlq_record_is_sent_again_without_its_original(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    source = InMemorySource([raw(b"{not json " + b"x" * 5000, offset=0), raw(msg(1, records[1]), offset=1)])
    # a DLQ topic whose max.message.bytes is small: only records without the original fit
    sink = InMemorySink(refuse=lambda t, k, v: "Broker: Message size too large" if t == "features.dlq" and len(v) > 2000 else None)
    worker = Worker(source, sink, ScoringService(small_ensemble, InMemoryHealth(), None), KafkaConfig(batch_size=10))
    run_all(worker)
    assert source.committed == {("features", 0): 2}
    (dlq,) = [orjson.loads(v) for t, _, v in sink.delivered if t == "features.dlq"]
    assert dlq["original"] == "" and dlq["original_size"] == 5010 and dlq["original_truncated"] is True
    assert "original omitted: DLQ record refused" in dlq["reason"] and dlq["error_type"] == "invalid_json"
    assert [t for t, _, _ in sink.delivered].count("scores") == 1


def test_refused_shadow_score_is_dropped_not_fatal(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    from stream_ensemble.types import BatchResult

    class WithShadow:
        def __init__(self, inner: ScoringService) -> None:
            self.inner = inner

        def handle(self, messages: list) -> BatchResult:
            r = self.inner.handle(messages)
            r.shadow = [(k, v, ref) for k, v, ref in r.scored]
            return r

    source = InMemorySource([raw(msg(i, records[i]), offset=i) for i in range(5)])
    sink = InMemorySink(refuse=lambda t, k, v: "too large" if t == "scores.shadow" else None)
    worker = Worker(source, sink, WithShadow(ScoringService(small_ensemble, InMemoryHealth(), None)),  # type: ignore[arg-type]
                    KafkaConfig(batch_size=10))
    run_all(worker)
    assert source.committed == {("features", 0): 5} and worker.stats.scored == 5 and worker.stats.rerouted == 5
