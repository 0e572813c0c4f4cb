"""The experiment router: batch split by sticky arm, each part scored once; shadow; live changes."""

from __future__ import annotations

import orjson

from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.serving.router import ExperimentRouter
from stream_ensemble.testing import InMemoryCache, InMemoryHealth, raw


def _msg(i: int, features: dict) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "entity_id": f"u{i % 150}", "timestamp": 1.0, "features": features})


def _router(ens: ServingEnsemble, fields: dict[str, str]) -> tuple[ExperimentRouter, list[str]]:
    loaded: list[str] = []
    clock = [0.0]

    def load(tag: str) -> ScoringService:
        loaded.append(tag)
        return ScoringService(ens, InMemoryHealth(), InMemoryCache())

    def tick() -> float:  # each look is 0.6 s after the previous one
        clock[0] += 0.6
        return clock[0]

    r = ExperimentRouter(ScoringService(ens, InMemoryHealth(), InMemoryCache()), "default", lambda: fields, load,
                         refresh_s=1.0, clock=tick)
    return r, loaded


def test_no_experiment_leaves_output_unchanged(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    batch = [raw(_msg(i, records[i % 50]), offset=i) for i in range(60)]
    plain = ScoringService(small_ensemble, InMemoryHealth(), None).handle(batch)
    r, loaded = _router(small_ensemble, {})
    routed = r.handle(batch)
    strip = [{k: v for k, v in orjson.loads(x).items() if k not in ("scored_at", "latency_ms")} for _, x, _ in plain.scored]
    got = [{k: v for k, v in orjson.loads(x).items() if k not in ("scored_at", "latency_ms")} for _, x, _ in routed.scored]
    assert got == strip and not loaded and not routed.shadow


def test_split_scores_each_event_once_in_its_sticky_arm(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    fields = {"experiment": "x1", "champion": "default@v1", "challengers": "default@v2=30", "salt": "s"}
    r, loaded = _router(small_ensemble, fields)
    batch = [raw(_msg(i, records[i % 50]), offset=i) for i in range(300)] + [raw(b"{bad", offset=300)]
    res = r.handle(batch)
    assert "default@v2" in loaded  # a challenger version is loaded once, on first sight
    assert len(res.scored) == 300 and len(res.dead_letters) == 1 and not res.shadow
    docs = [orjson.loads(v) for _, v, _ in res.scored]
    assert sorted(d["event_id"] for d in docs) == sorted(f"e{i}" for i in range(300))
    arm_of = {}
    for d in docs:
        assert d["experiment"] == "x1"
        assert arm_of.setdefault(d["entity_id"], d["arm"]) == d["arm"]  # an entity has one arm (u0 = e0, e150)
    assert 0.15 < sum(d["arm"] == "default@v2" for d in docs) / 300 < 0.45
    # arm counts for the metrics: every routed event once (the unparsable one goes to the champion)
    assert res.arms[("x1", "default@v2")] == sum(d["arm"] == "default@v2" for d in docs)
    assert sum(res.arms.values()) == 301
    # raising the challenger's weight only moves entities into it
    fields["challengers"] = "default@v2=50"
    res2 = r.handle(batch)  # 0.6 s later: not re-read yet (refresh_s = 1)
    assert [orjson.loads(v)["arm"] for _, v, _ in res2.scored] == [d["arm"] for d in docs]
    res2 = r.handle(batch)  # 1.2 s after the first read: the new weights
    arm2 = {orjson.loads(v)["entity_id"]: orjson.loads(v)["arm"] for _, v, _ in res2.scored}
    assert all(arm2[e] == "default@v2" for e, a in arm_of.items() if a == "default@v2")
    assert sum(a == "default@v2" for a in arm2.values()) > sum(a == "default@v2" for a in arm_of.values())


def test_shadow_keeps_champion_output_and_scores_the_share_again(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    fields = {"experiment": "x2", "champion": "default@v1", "challengers": "default@v2=40", "mode": "shadow"}
    r, _ = _router(small_ensemble, fields)
    batch = [raw(_msg(i, records[i % 50]), offset=i) for i in range(200)]
    res = r.handle(batch)
    main = [orjson.loads(v) for _, v, _ in res.scored]
    side = [orjson.loads(v) for _, v, _ in res.shadow]
    assert len(main) == 200 and all(d["arm"] == "champion" for d in main)
    assert 0 < len(side) < 200 and all(d["arm"] == "default@v2" for d in side)
    assert {d["event_id"] for d in side} <= {d["event_id"] for d in main}
    assert res.arms == {("x2", "champion"): 200, ("x2", "default@v2"): len(side)}
    fields["status"] = "stopped: guardrail"  # a stopped experiment routes nothing
    r.handle(batch)
    res = r.handle(batch)
    assert not res.shadow and all(orjson.loads(v)["arm"] == "champion" for _, v, _ in res.scored)
