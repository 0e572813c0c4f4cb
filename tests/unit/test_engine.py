"""Engine on real (small) models with in-memory ports: accounting, cache, health, failures."""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import orjson
import pytest

from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import InMemoryCache, InMemoryHealth, InMemorySink, InMemorySource, raw
from stream_ensemble.worker import Worker


def msg(i: int, features: dict, **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "entity_id": f"u{i}", "timestamp": 1.0, "features": features, **extra})


def test_every_message_is_scored_or_dead_lettered(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    service = ScoringService(small_ensemble, InMemoryHealth(), InMemoryCache())
    batch = [raw(msg(i, records[i]), offset=i) for i in range(40)]
    batch += [raw(b"{oops", offset=40), raw(msg(41, {**records[0], "mean_radius": "x"}), offset=41), raw(None, offset=42)]
    result = service.handle(batch)
    assert len(result.scored) == 40 and len(result.dead_letters) == 3
    assert {d.error_type for d in result.dead_letters} == {"invalid_json", "feature_type", "empty"}
    docs = [orjson.loads(v) for _, v, _ in result.scored]
    assert [d["event_id"] for d in docs] == [f"e{i}" for i in range(40)]
    assert all(0.0 <= d["probability"] <= 1.0 and d["label"] in ("benign", "malignant") for d in docs)
    assert all(set(d["models_used"]) == {"logreg@v1", "naive_bayes@v1", "decision_tree@v1"} for d in docs)
    # The batch is scored by the ensemble, not a constant: decisions track the labels.
    from stream_ensemble.core.data import load_bundled
    y = load_bundled().y[:40]
    assert np.mean([d["decision"] for d in docs] == y) > 0.85


def test_second_identical_event_hits_cache(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    cache = InMemoryCache()
    service = ScoringService(small_ensemble, InMemoryHealth(), cache)
    first = orjson.loads(service.handle([raw(msg(1, records[5]))]).scored[0][1])
    res = service.handle([raw(msg(2, records[5]))])
    second = orjson.loads(res.scored[0][1])
    assert res.cache_hits == 1 and first["cache_hit"] is False and second["cache_hit"] is True
    assert second["event_id"] == "e2" and second["probability"] == first["probability"]


def test_marked_down_member_is_excluded_and_cache_not_reused(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    health = InMemoryHealth()
    cache = InMemoryCache()
    service = ScoringService(small_ensemble, health, cache)
    service.handle([raw(msg(1, records[7]))])
    health.down_set.add("naive_bayes")
    res = service.handle([raw(msg(2, records[7]))])
    doc = orjson.loads(res.scored[0][1])
    assert res.cache_hits == 0, "a score that used a down member must not be served"
    assert "naive_bayes@v1" not in doc["models_used"] and "naive_bayes@v1" not in doc["model_probabilities"]
    reasons = {m["model"]: m["reason"] for m in doc["explanation"]["members"]}
    assert reasons["naive_bayes@v1"] == "marked_down"


class Exploding:
    classes_ = np.arange(2)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")


def test_failing_member_is_isolated(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    ens = copy.copy(small_ensemble)
    pool = copy.copy(ens.pool)
    pool.members = list(pool.members)
    pool.members[0] = type(pool.members[0])(pool.members[0].name, 1, "linear", Exploding(), 1.0)
    ens.pool = pool
    res = ScoringService(ens, InMemoryHealth(), None).handle([raw(msg(i, records[i]), offset=i) for i in range(5)])
    assert len(res.scored) == 5 and not res.dead_letters
    doc = orjson.loads(res.scored[0][1])
    failed = pool.members[0].tag
    assert failed not in doc["models_used"]
    assert {m["model"]: m["reason"] for m in doc["explanation"]["members"]}[failed] == "failed"


def test_worker_commits_only_after_delivery(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    cfg = KafkaConfig(batch_size=10, delivery_timeout_s=1.0)
    service = ScoringService(small_ensemble, InMemoryHealth(), None)
    source = InMemorySource([raw(msg(i, records[i]), offset=i) for i in range(25)] + [raw(b"bad", offset=25)])
    sink = InMemorySink(fail=True)
    worker = Worker(source, sink, service, cfg)
    assert worker.run_once() == 10  # batch 1 sent, its acks awaited while batch 2 is scored
    # A broker outage is waited out: the worker neither exits nor commits, however long it lasts.
    waiting = threading.Thread(target=worker.run_once)
    waiting.start()
    time.sleep(1.5)  # longer than delivery_timeout_s
    assert waiting.is_alive() and sink.flushes >= 3, "the worker keeps waiting for the broker"
    assert source.committed == {}, "nothing may be committed while delivery fails"
    sink.fail = False  # the broker is back
    waiting.join(5.0)
    assert not waiting.is_alive()
    assert source.committed == {("features", 0): 10}, "batch 1 committed once acknowledged; batch 2 in flight"
    # A stop during an outage gives up after delivery_timeout_s without committing.
    sink.fail = True
    worker.stop()
    with pytest.raises(KafkaAdapterError):
        worker.settle()
    assert source.committed == {("features", 0): 10}
    with pytest.raises(RuntimeError, match="not acknowledged"):
        worker.run_once()  # batch 3 may be scored but its predecessor was never acknowledged
    # A healthy run over the same input commits everything, after delivery.
    source = InMemorySource([raw(msg(i, records[i]), offset=i) for i in range(25)] + [raw(b"bad", offset=25)])
    sink = InMemorySink()
    worker = Worker(source, sink, service, cfg)
    while worker.run_once():
        assert all(o <= 10 * (worker.stats.batches + 1) for o in source.committed.values())
    assert source.committed == {("features", 0): 26}
    topics = [t for t, _, _ in sink.delivered]
    assert topics.count("scores") == 25 and topics.count("features.dlq") == 1


def test_duplicates_in_a_batch_are_scored_once_and_all_accounted(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    calls = []
    ens = copy.copy(small_ensemble)
    real_score = ens.score
    ens.score = lambda X, *a, **k: (calls.append(X.shape[0]), real_score(X, *a, **k))[1]  # type: ignore[method-assign]
    bad = {**records[1], "mean_radius": "bad"}
    batch = [raw(msg(i, records[i % 2]), offset=i) for i in range(10)] + [raw(msg(10 + i, bad), offset=10 + i) for i in range(3)]
    res = ScoringService(ens, InMemoryHealth(), None).handle(batch)
    assert calls == [2], "two distinct valid vectors -> one model pass over 2 rows"
    assert len(res.scored) == 10 and len(res.dead_letters) == 3
    assert {d.event_id for d in res.dead_letters} == {"e10", "e11", "e12"}
    probs = {orjson.loads(v)["event_id"]: orjson.loads(v)["probability"] for _, v, _ in res.scored}
    assert len({probs[f"e{i}"] for i in range(0, 10, 2)}) == 1 and len(set(probs.values())) == 2


def test_explanation_levels_and_contributions_add_up(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    service = ScoringService(small_ensemble, InMemoryHealth({"decision_tree"}), None, explain="summary", max_explain="full")
    batch = [raw(msg(0, records[0])), raw(msg(1, records[1], explain="full")), raw(msg(2, records[2], explain="none"))]
    docs = [orjson.loads(v) for _, v, _ in service.handle(batch).scored]
    summary, full, none = docs
    assert none["explanation"] is None
    assert "feature_attribution" not in summary["explanation"]
    attribution = full["explanation"]["feature_attribution"]
    assert attribution["method"] == "occlusion" and len(attribution["features"]) == 10
    assert {f["feature"] for f in attribution["features"]} <= set(small_ensemble.encoder.output_names_)
    assert any(abs(f["attribution"]) > 0 for f in attribution["features"])
    for doc in (summary, full):
        e = doc["explanation"]
        used = [m for m in e["members"] if m["used"]]
        assert {m["model"] for m in used} == set(doc["models_used"])
        assert e["baseline"] + sum(m["contribution"] for m in used) == pytest.approx(e["score"], rel=1e-5, abs=1e-6)
        reasons = {m["model"]: m["reason"] for m in e["members"]}
        assert reasons["decision_tree@v1"] == "marked_down"
        assert sum(m["weight"] for m in used) == pytest.approx(1.0, abs=1e-5)


def test_failed_commit_does_not_stop_the_worker(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    source = InMemorySource([raw(msg(i, records[i]), offset=i) for i in range(20)], fail_commits=1)
    sink = InMemorySink()
    worker = Worker(source, sink, ScoringService(small_ensemble, InMemoryHealth(), None), KafkaConfig(batch_size=10))
    assert worker.run_once() == 10
    assert worker.run_once() == 10  # batch 1 delivered, its commit refused: logged, counted, go on
    assert worker.run_once() == 0  # idle: batch 2 settles
    assert worker.stats.commit_failures == 1
    assert source.committed == {("features", 0): 20}
    assert len(sink.delivered) == 20
