"""``bench ab``'s figures on hand-made reader rows: stickiness, switch time, share, shadow identity."""

from __future__ import annotations

from stream_ensemble.bench.ab_live.figures import arms_by_key, routing, shadow_figures
from stream_ensemble.bench.ab_live.procs import Scored
from stream_ensemble.bench.ab_live.report import CONTRACT, goals

CHAL = "default@v2"
SALT = "s"


def _rows(entities: list[str], t: float, weights: dict[str, float], exp: str = "e", start: int = 0) -> list[Scored]:
    arms = arms_by_key(SALT, entities, weights)
    return [Scored(f"s-{start + i}", e, arms[e], "v", exp, t) for i, e in enumerate(entities)]


def test_routing_counts_switch_share_and_violations() -> None:
    ents = [f"u{i}" for i in range(400)]
    w30, w50 = {"champion": 70.0, CHAL: 30.0}, {"champion": 50.0, CHAL: 50.0}
    rows = _rows(ents, 10.0, w30) + _rows(ents, 20.5, w50, start=400)  # switch written at 20.0
    got = routing(rows, "e", SALT, CHAL, 0.3, 0.5, {"switch": 20.0, "start": 0.0})
    assert got["switch_seen_s"] == 0.5
    assert got["sticky_violations"] == 0 and got["assignment_mismatches"] == 0
    lo, hi = got["binomial_99"]
    assert lo <= got["observed_fraction"] <= hi and got["phase1_entities"] == 400
    assert got["movers"] > 0 and got["moved_out_of_challenger"] == 0  # raising a weight only moves entities in
    # one entity flipping arm inside phase 1 is a violation and a mismatch
    flip = rows[0]
    bad = rows + [Scored("s-999", flip.entity, CHAL if flip.arm == "champion" else "champion", "v", "e", 11.0)]
    got = routing(bad, "e", SALT, CHAL, 0.3, 0.5, {"switch": 20.0, "start": 0.0})
    assert got["sticky_violations"] == 1 and got["assignment_mismatches"] == 1


def test_routing_without_a_switch_seen() -> None:
    ents = [f"u{i}" for i in range(50)]
    rows = _rows(ents, 10.0, {"champion": 70.0, CHAL: 30.0})
    got = routing(rows, "e", SALT, CHAL, 0.3, 0.5, {"switch": 20.0})
    assert got["switch_seen_s"] is None


def test_shadow_figures_ignore_only_clock_id_and_tag() -> None:
    base = {"entity_id": "f1", "probability": 0.7, "scored_at": 1.0, "latency_ms": 3.0, "arm": "champion"}
    docs = {"x-0": {**base, "event_id": "x-0"}, "y-0": {**base, "event_id": "y-0", "scored_at": 9.0, "experiment": "e2"}}
    shadow = [Scored("y-0", "f1", CHAL, "v", "e2", 9.0)]
    ok = shadow_figures(docs, shadow, 1, {0}, "e2")
    assert ok["identical"] and ok["shadow_as_assigned"] and ok["main_tagged_with_experiment"] == 1
    docs["y-0"]["probability"] = 0.71
    bad = shadow_figures(docs, shadow, 1, {0}, "e2")
    assert not bad["identical"] and bad["differing_fields"] == ["probability"]
    assert not shadow_figures({"x-0": docs["x-0"]}, [], 1, set(), "e2")["identical"]  # a missing output is not identical


def test_goals_follow_the_figures() -> None:
    r = {"binomial_99": [0.25, 0.35], "observed_fraction": 0.3, "switch_seen_s": 0.4, "sticky_violations": 0,
         "shadow_main_identical": True, "outcomes_joined": 10, "outcomes_published": 10, "winner": "champion",
         "sequential_p_value": 0.01, "guardrail_stopped": True, "lost": 0}
    assert all(goals(r).values())
    assert not goals({**r, "switch_seen_s": 2.5})["switch_seen_le_2s"]
    assert not goals({**r, "outcomes_joined": 11})["joined_eq_published"]
    assert not goals({**r, "winner": "undecided"})["champion_better_anytime_p_lt_0.05"]
    assert CONTRACT[0] == "configured_fraction" and CONTRACT[-1] == "guardrail_stopped"
