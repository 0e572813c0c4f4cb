"""The pure outcome join: exactly-once counting, pairing of shadow arms, expiry, spec parsing."""

from __future__ import annotations

import pytest

from stream_ensemble.core.experiments.join import (
    apply_outcome,
    apply_score,
    calibration_error,
    expire,
    merge_stats,
    metric_sums,
    new_bucket,
    score_record,
)  # fmt: skip
from stream_ensemble.core.experiments.spec import ExperimentSpec, parse_challengers
from stream_ensemble.core.experiments.summary import summarize
from stream_ensemble.errors import ConfigError


def _scored(event_id: str, arm: str, decision: int, p: float, exp: str = "x") -> dict[str, object]:
    return {"event_id": event_id, "experiment": exp, "arm": arm, "ensemble_version": "m@v1", "decision": decision,
            "label": ["a", "b"][decision], "probability": p, "model_probabilities": {"lr@v1": p}}


def test_score_then_outcome_and_outcome_then_score_join_once() -> None:
    b = new_bucket()
    apply_score(b, "e1", score_record(_scored("e1", "champion", 1, 0.9), shadow=False) or {}, 0.0)
    apply_outcome(b, "e1", 1, 1.0)
    apply_outcome(b, "e2", 0, 1.0)
    apply_score(b, "e2", score_record(_scored("e2", "champion", 1, 0.7), shadow=False) or {}, 2.0)
    # re-delivered inputs after a crash: counted as duplicates, not again
    apply_outcome(b, "e1", 1, 3.0)
    apply_score(b, "e2", score_record(_scored("e2", "champion", 1, 0.7), shadow=False) or {}, 3.0)
    assert b["counts"]["joined"] == 2
    assert b["counts"]["outcomes_duplicate"] == 1 and b["counts"]["scores_duplicate"] == 1
    sums = b["stats"]["x"]["arms"]["champion"]["members"]["ensemble"]
    acc = metric_sums(sums, "accuracy")
    assert acc.n == 2 and acc.total == 1  # e1 right, e2 wrong
    assert metric_sums(sums, "brier").total == pytest.approx(0.1**2 + 0.7**2)
    assert calibration_error(sums) == pytest.approx(abs(0.9 - 1) / 2 + abs(0.7 - 0) / 2)
    assert "lr@v1" in b["stats"]["x"]["arms"]["champion"]["members"]


def test_shadow_arm_is_paired_with_the_champion_whatever_the_order() -> None:
    b = new_bucket()
    shadow = score_record(_scored("e1", "m@v2", 0, 0.4), shadow=True) or {}
    champ = score_record(_scored("e1", "champion", 1, 0.9), shadow=False) or {}  # main topic: no mode field
    apply_score(b, "e1", shadow, 0.0)
    apply_outcome(b, "e1", 1, 0.5)
    apply_score(b, "e1", champ, 1.0)  # the champion joins late: the pair is made now
    paired = metric_sums(b["stats"]["x"]["paired"]["m@v2"], "accuracy")
    assert paired.n == 1 and paired.total == -1.0  # challenger wrong, champion right
    assert b["counts"]["joined"] == 2


def test_expiry_counts_unknown_unlabelled_and_expired() -> None:
    b = new_bucket()
    apply_outcome(b, "ghost", 1, 0.0)
    apply_score(b, "lonely", score_record(_scored("lonely", "champion", 1, 0.9), shadow=False) or {}, 0.0)
    expire(b, 100.0, 10.0)
    apply_outcome(b, "lonely", 1, 101.0)
    assert b["counts"]["outcomes_unknown"] == 1
    assert b["counts"]["scores_unlabelled"] == 1
    assert b["counts"]["outcomes_expired"] == 1
    assert b["counts"]["joined"] == 0 and not b["pending"]


def test_merge_and_summary_name_the_better_arm() -> None:
    buckets = [new_bucket() for _ in range(2)]
    for i in range(2000):
        b = buckets[i % 2]
        arm = "champion" if i % 2 else "m@v2"
        right = (i * 7919) % 100 < (90 if arm == "champion" else 70)
        apply_score(b, f"e{i}", score_record(_scored(f"e{i}", arm, 1 if right else 0, 0.8), shadow=False) or {}, 0.0)
        apply_outcome(b, f"e{i}", 1, 0.0)
    merged = merge_stats(buckets)
    spec = ExperimentSpec.from_fields("m", {"experiment": "x", "champion": "m@v1", "challengers": "m@v2=50"})
    rep = summarize(spec, merged, metric="accuracy", alpha=0.05, min_outcomes=100)
    assert rep["arms"]["champion"]["n"] == rep["arms"]["m@v2"]["n"] == 1000
    c = rep["comparisons"]["m@v2"]
    assert c["difference"] < 0 and c["cs_high"] < 0 and c["guardrail"] == "stop"
    assert rep["winner"] == "champion"


def test_spec_parsing_and_errors() -> None:
    assert parse_challengers("m@v2=30, m@v3=10") == {"m@v2": 30.0, "m@v3": 10.0}
    spec = ExperimentSpec.from_fields("m", {"champion": "m@v1", "challengers": "m@v2=30"})
    assert spec.weights() == {"champion": 70.0, "m@v2": 30.0} and spec.salt == "m"
    for bad in ("m@v2", "m@v2=130", "m2=10", "m@v2=x"):
        with pytest.raises(ConfigError):
            parse_challengers(bad)
    with pytest.raises(ConfigError):
        ExperimentSpec.from_fields("m", {"champion": "m@v1", "challengers": "m@v2=60,m@v3=50"})
    with pytest.raises(ConfigError):
        ExperimentSpec.from_fields("m", {"champion": "m@v1", "mode": "live"})


def test_ab_start_bad_challenger_is_one_line_exit_2() -> None:
    from click.testing import CliRunner

    from stream_ensemble.cli import main

    res = CliRunner().invoke(main, ["ab", "start", "default", "--challenger", "default@v2=150"])
    assert res.exit_code == 2
    assert "weight in 0..100" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["ab", "evaluate", "--join-window-s", "0"])
    assert res.exit_code == 2 and "join window" in res.output


def test_early_looks_do_not_decide() -> None:
    """A challenger right on its first 40 outcomes (sample variance 0) against a champion right
    98% of the time: before the burn-in no look counts; after it the pooled variance keeps the
    difference from looking exact. (Welch alone gave sequential p 0.02 on a demo run.)"""
    b = new_bucket()
    for i in range(200):
        apply_score(b, f"c{i}", score_record(_scored(f"c{i}", "champion", 1 if i % 50 else 0, 0.8), shadow=False) or {}, 0.0)
        apply_outcome(b, f"c{i}", 1, 0.0)
    for i in range(40):
        apply_score(b, f"n{i}", score_record(_scored(f"n{i}", "m@v2", 1, 0.8), shadow=False) or {}, 0.0)
        apply_outcome(b, f"n{i}", 1, 0.0)
    merged = merge_stats([b])
    spec = ExperimentSpec.from_fields("m", {"experiment": "x", "champion": "m@v1", "challengers": "m@v2=20"})
    early = summarize(spec, merged, metric="accuracy", alpha=0.05, min_outcomes=100)
    assert early["comparisons"]["m@v2"]["sequential_p_value"] == 1.0 and early["winner"] == "undecided"
    late = summarize(spec, merged, metric="accuracy", alpha=0.05, min_outcomes=40)
    c = late["comparisons"]["m@v2"]
    assert c["difference"] > 0 and c["sequential_p_value"] > 0.05 and late["winner"] == "undecided"
    assert c["p_value"] > 0.05  # the pooled variance also keeps the fixed-horizon test honest here


def test_arm_intervals_stay_in_the_metric_range() -> None:
    b = new_bucket()
    for i in range(500):
        right = i != 7  # 499 of 500: the normal interval's top is 1.0019
        apply_score(b, f"e{i}", score_record(_scored(f"e{i}", "champion", 1 if right else 0, 0.99), shadow=False) or {}, 0.0)
        apply_outcome(b, f"e{i}", 1, 0.0)
    from stream_ensemble.core.experiments.summary import arm_table

    row = arm_table(merge_stats([b])["stats"]["x"]["arms"]["champion"], 0.05)["ensemble"]
    assert row["accuracy"]["high"] == 1.0 and 0.99 < row["accuracy"]["low"] < 1.0
    assert row["brier"]["low"] >= 0.0 and row["log_loss"]["low"] >= 0.0
