"""bench faults pieces that need no server: the faulty member, the poison events, the goals
and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from stream_ensemble.bench.faults import report
from stream_ensemble.bench.faults.poison import poison_events
from stream_ensemble.bench.faults.scenarios import SCENARIOS
from stream_ensemble.cli.bench import FAULT_SCENARIOS
from stream_ensemble.serving.codec import DecodeError, decode_event
from stream_ensemble.testing import FaultyEstimator


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def test_faulty_estimator_modes(fitted: LogisticRegression) -> None:
    X = np.zeros((4, 3))
    with pytest.raises(RuntimeError):
        FaultyEstimator(fitted, "raise").predict_proba(X)
    assert np.isnan(FaultyEstimator(fitted, "nan").predict_proba(X)).all()
    out = np.asarray(FaultyEstimator(fitted, "out_of_range").predict_proba(X))
    assert out.shape == (4, 2) and (out > 1).any() and (out < 0).any() and np.allclose(out.sum(axis=1), 1.0)
    slow = FaultyEstimator(fitted, "sleep", sleep_s=0.01)
    assert np.allclose(np.asarray(slow.predict_proba(X)), fitted.predict_proba(X))
    assert list(np.asarray(slow.classes_)) == [0, 1]
    with pytest.raises(ValueError, match="mode"):
        FaultyEstimator(fitted, "explode")


def test_poison_events_are_deterministic_keyed_and_hostile() -> None:
    record = {"mean_radius": 14.0, "mean_texture": 19.0}
    a = poison_events("p", record, copies=2, hypothesis_n=15, seed=3)
    b = poison_events("p", record, copies=2, hypothesis_n=15, seed=3)
    assert a == b
    kinds = {k for _, k, _ in a}
    assert {"oversize_800kb", "random_bytes", "empty_value", "plus_1e308", "timestamp_1e300", "hypothesis"} <= kinds
    assert len({e for e, _, _ in a}) == len(a) == 10 * 2 + 15
    oversize = next(v for _, k, v in a if k == "oversize_800kb")
    assert 790_000 < len(oversize) < 1_000_000  # fits the topic, not its DLQ record once base64-encoded
    for eid, kind, value in a:
        if kind in ("empty_value", "random_bytes"):
            continue
        try:
            ev = decode_event(value)
        except DecodeError as exc:
            assert exc.event_id in (None, eid)
        else:
            assert ev.event_id == eid  # the id the collector counts it by


def test_cli_lists_every_scenario() -> None:
    assert list(FAULT_SCENARIOS) == list(SCENARIOS)


def _scenario(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "kill9_x3", "produced": 10, "scored": 10, "dead_lettered": 0, "lost": 0,
                               "duplicates": 2, "degraded": 0, "max_stall_s": 12.0, "worker_restarts": 3,
                               "rss_mb_max": 200.0, "redis_mb_max": 5.0, "worker_exits": [], "degraded_actual": 0,
                               "degraded_unflagged": 0, "marks": [[1.0, "SIGKILL worker 0"]], "stall_at_marks_s": [12.0],
                               "blackouts_s": [], "timeline": [5, 0, 5], "good_dead_lettered": 0}
    return {**base, **kw}


def test_goals_pass_and_fail_on_the_figures(tmp_path: Path) -> None:
    ok = _scenario()
    assert report.goals(ok)["stall"] is True and report.goals(ok)["lost_0"] is True
    slow = _scenario(max_stall_s=15.5)
    assert report.goals(slow)["stall"] is False
    crash = _scenario(name="poison_mix", lost=3, worker_exits=[1, 1], poison_neighbours_degraded=4, poison={})
    g = report.goals(crash)
    assert g["lost_0"] is False and g["no_worker_exit"] is False and g["poison_neighbours_0"] is False
    assert g["stall"] is None
    summary = report.summarize([ok, crash])
    assert summary["goals_met"] is False and summary["lost"] == 3 and summary["worker_exits"] == 2
    assert set(summary["goals_failed"]) == {"poison_mix"}
    result = {"scenarios": [ok, crash], "summary": summary, "errors": {},
              "config": {"rate": 300, "soak_rate": 1500, "partitions": 3},
              "machine": {"load_before": [1.0], "load_after": [2.0]}, "elapsed_s": 9.0}
    md = report.render_markdown(result)
    assert "| kill9_x3 | 10 | 10 | 0 | 0 | 2 | 0 | 12.0 | 3 |" in md and "**NO**" in md
    report.render_png(result, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    line = orjson.loads(report.summary_line(result))
    assert line["per_scenario"][0]["name"] == "kill9_x3" and set(line["per_scenario"][0]) == set(report.CONTRACT)


def test_a_restart_whose_port_is_held_is_tried_again_other_failures_are_not(
        tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from stream_ensemble.bench.faults import servers
    from stream_ensemble.errors import ConfigError

    monkeypatch.setattr(servers.time, "sleep", lambda s: None)
    calls: list[str] = []

    def failing(message: str, times: int):  # type: ignore[no-untyped-def]
        def run(self, script: str, *args: str, timeout: float = 300.0) -> str:  # type: ignore[no-untyped-def]
            calls.append(script)
            if len(calls) <= times:
                raise ConfigError(f"ops/{script} start failed: {message}")
            return ""
        return run

    monkeypatch.setattr(servers.OwnServers, "_run", failing("failed to bind to 127.0.0.1:40292: Address already in use", 2))
    servers.OwnServers(tmp_path, 1, 2, 3).kafka_start()
    assert calls == ["kafka.sh"] * 3
    calls.clear()
    monkeypatch.setattr(servers.OwnServers, "_run", failing("no java", 1))
    with pytest.raises(ConfigError, match="no java"):
        servers.OwnServers(tmp_path, 1, 2, 3).kafka_start()
    assert calls == ["kafka.sh"]
