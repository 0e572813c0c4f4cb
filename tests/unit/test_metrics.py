"""WorkerMetrics: librdkafka stats to lag gauges, selection changes, probes."""

from __future__ import annotations

import orjson
from prometheus_client.parser import text_string_to_metric_families

from stream_ensemble.adapters.metrics import WorkerMetrics
from stream_ensemble.types import BatchResult


def _samples(m: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_consumer_lag_only_for_assigned_partitions() -> None:
    m = WorkerMetrics()
    m.assignment([("features", 0), ("features", 1)])
    stats = {"brokers": {"b1": {"state": "UP"}}, "topics": {"features": {"partitions": {
        "0": {"consumer_lag": 12}, "1": {"consumer_lag": -1}, "2": {"consumer_lag": 99}, "-1": {"consumer_lag": 5}}}}}
    m.kafka_stats(orjson.dumps(stats).decode())
    s = _samples(m)
    assert s[("se_consumer_lag", (("partition", "0"), ("topic", "features")))] == 12
    assert ("se_consumer_lag", (("partition", "2"), ("topic", "features"))) not in s
    m.assignment(revoked=[("features", 0)])
    assert ("se_consumer_lag", (("partition", "0"), ("topic", "features"))) not in _samples(m)
    m.kafka_stats("not json")  # ignored, never raises


def test_selection_change_counts_a_reselection_and_moves_the_gauge() -> None:
    m = WorkerMetrics()
    m.selection("sel-a")
    m.selection("sel-a")
    m.selection("sel-b")
    s = _samples(m)
    assert s[("se_reselections_total", ())] == 1
    assert s[("se_selection", (("selection_id", "sel-b"),))] == 1
    assert ("se_selection", (("selection_id", "sel-a"),)) not in s


def test_readiness_needs_model_assignment_and_broker() -> None:
    m = WorkerMetrics()
    assert m.healthz()[0] and not m.readyz()[0]
    m.model_loaded = True
    m.assignment([("features", 0)])
    assert not m.readyz()[0]  # broker not seen yet
    m.kafka_stats(orjson.dumps({"brokers": {"b": {"state": "UP"}}}).decode())
    ok, detail = m.readyz()
    assert ok and detail["assigned"] == 1
    m.stall_s = 0.0
    assert not m.healthz()[0]


def test_hooks_for_later_features_exist() -> None:
    m = WorkerMetrics()
    m.member("knn", 0.01, "timed_out")
    m.breaker("knn", "open")
    m.degraded("member_failed", 3)
    m.arm("exp1", "challenger", 2)
    s = _samples(m)
    assert s[("se_member_failures_total", (("member", "knn"), ("reason", "timed_out")))] == 1
    assert s[("se_member_breaker_state", (("member", "knn"),))] == 1.0
    assert s[("se_events_degraded_total", (("reason", "member_failed"),))] == 3
    assert s[("se_experiment_arm_events_total", (("arm", "challenger"), ("experiment", "exp1")))] == 2


def test_batch_counts_events_per_experiment_arm() -> None:
    m = WorkerMetrics()
    result = BatchResult(arms={("exp1", "champion"): 7, ("exp1", "ens@v2"): 3})
    m.batch([], result, 0.01, 0.02)
    m.batch([], result, 0.01, 0.02)
    s = _samples(m)
    assert s[("se_experiment_arm_events_total", (("arm", "champion"), ("experiment", "exp1")))] == 14
    assert s[("se_experiment_arm_events_total", (("arm", "ens@v2"), ("experiment", "exp1")))] == 6


def test_observe_many_counts_as_the_loop_does() -> None:
    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram

    from stream_ensemble.adapters.metrics import observe_many

    reg = CollectorRegistry()
    bulk = Histogram("bulk_s", "b", buckets=(0.01, 0.1, 1.0), registry=reg)
    loop = Histogram("loop_s", "l", buckets=(0.01, 0.1, 1.0), registry=reg)
    values = np.array([0.0, 0.01, 0.010001, 0.05, 0.1, 0.5, 1.0, 3.0, 99.0])
    observe_many(bulk, values)
    for v in values.tolist():
        loop.observe(v)
    def samples(h: Histogram, name: str) -> dict[tuple[str, str], float]:
        return {(s.name.replace(name, "x"), s.labels.get("le", "")): s.value
                for s in h.collect()[0].samples if "created" not in s.name}

    got, want = samples(bulk, "bulk_s"), samples(loop, "loop_s")
    assert got.keys() == want.keys() and len(got) == 6  # 4 buckets, count, sum
    for k in got:
        assert abs(got[k] - want[k]) < 1e-12, k
