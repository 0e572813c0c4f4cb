"""The accuracy benchmark: metric oracles, aggregation, goals, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.base import BaseEstimator
from sklearn.datasets import make_classification

from stream_ensemble.bench import accuracy, report
from stream_ensemble.bench.accuracy.aggregate import _aggregate_methods
from stream_ensemble.bench.accuracy.coverage import conformal_twin
from stream_ensemble.cli.bench import bench, jsonable
from stream_ensemble.core.data import Dataset, from_frame, load_bundled
from stream_ensemble.core.evaluation import relative_reduction
from stream_ensemble.errors import ConfigError

SMALL_POOL = ("logreg", "naive_bayes", "decision_tree")


def test_proba_metrics_oracle_and_clipping() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([1.0, 0.0, 0.0, 0.5])  # row 3 is confidently wrong with an exact 0
    m = accuracy.proba_metrics(p, y)
    # -log(1e-15) for the exact-0 true class, -log(0.5) for the last row, 0 for the others.
    assert m["log_loss"] == pytest.approx((-math.log(1e-15) - math.log(0.5)) / 4, rel=1e-6)
    assert m["accuracy"] == pytest.approx(0.75)  # 0.5 counts as class 1
    assert m["brier"] == pytest.approx((0 + 0 + 1 + 0.25) / 4)
    assert m["roc_auc"] == pytest.approx(0.625)
    assert set(m) == set(accuracy.METRIC_NAMES)


def test_relative_reduction() -> None:
    assert relative_reduction(0.9, 1.0) == pytest.approx(0.1)
    assert relative_reduction(1.2, 1.0) == pytest.approx(-0.2)
    assert math.isnan(relative_reduction(1.0, 0.0))


def test_aggregate_methods_mean_std_and_reduction_of_means() -> None:
    per_split = [
        {"best_single": {k: 1.0 for k in accuracy.METRIC_NAMES}, "a": {k: 0.5 for k in accuracy.METRIC_NAMES}},
        {"best_single": {k: 2.0 for k in accuracy.METRIC_NAMES}, "a": {k: 2.0 for k in accuracy.METRIC_NAMES},
         "only_here": {k: 0.0 for k in accuracy.METRIC_NAMES}},
    ]
    out = _aggregate_methods(per_split, "best_single")
    assert set(out) == {"best_single", "a"}  # a method missing from one split is dropped
    assert out["a"]["log_loss"] == pytest.approx(1.25) and out["a"]["log_loss_std"] == pytest.approx(0.75)
    # Headline: reduction of the split means, (1.5 - 1.25) / 1.5; the mean of the per-split
    # reductions ((1 - 0.5) / 1 = 0.5 and (2 - 2) / 2 = 0) is kept beside it.
    assert out["a"][accuracy.REL_LL] == pytest.approx(0.25 / 1.5)
    assert out["a"][accuracy.REL_LL + "_split_mean"] == pytest.approx(0.25)


def _entry(rel_default: float, rel_stack: float, ece: tuple[float, float], cov: float, sel: tuple[float, float],
           auroc: tuple[float, float] = (0.8, 0.8)) -> dict:
    return {
        "strategies": ["caruana"], "default": "caruana", "n_test": 1000, "n_cal": 1000, "splits": 1,
        "methods": {"default": {accuracy.REL_LL: rel_default}, "caruana": {accuracy.REL_LL: rel_default},
                    "sklearn_stacking": {accuracy.REL_LL: rel_stack}, "best_single": {accuracy.REL_LL: 0.0}},
        "calibration": {"ece_before": ece[0], "ece_after": ece[1]},
        "conformal": [{"alpha": 0.1, "mondrian": False, "coverage": cov, "mean_set_size": 1.0}],
        "confidence": {"selective_accuracy_at_80": sel[0], "baseline_selective_accuracy_at_80": sel[1],
                       "error_auroc": auroc[0], "top_proba_error_auroc": auroc[1], "measures": {"top_proba": 0.7}},
    }


def test_summarise_goals() -> None:
    good = {"a": _entry(0.10, 0.02, (0.05, 0.03), 0.905, (0.95, 0.94)),
            "b": _entry(0.04, 0.03, (0.05, 0.05), 0.89, (0.90, 0.90))}
    s = accuracy.summarise(good)
    assert s["relative_log_loss_reduction"]["default"]["mean"] == pytest.approx(0.07)
    assert s["relative_log_loss_reduction"]["default"]["worst_dataset"] == "b"
    assert s["relative_log_loss_reduction"]["default"]["median"] == pytest.approx(0.07)
    assert s["relative_log_loss_reduction"]["default"]["wins"] == 2
    assert s["relative_log_loss_reduction"]["best_single"]["wins"] == 0
    assert s["best_strategy"] == "caruana"
    assert all(g["holds"] for g in s["goals"].values()), s["goals"]
    bad = {"a": _entry(0.10, 0.20, (0.05, 0.06), 0.85, (0.90, 0.91)),
           "b": _entry(-0.02, 0.0, (0.05, 0.03), 0.90, (0.9, 0.9), auroc=(0.70, 0.72))}
    g = accuracy.summarise(bad)["goals"]
    assert not g["default_never_worse_than_1pct"]["holds"] and "b" in g["default_never_worse_than_1pct"]["detail"]
    assert not g["default_beats_sklearn_stacking"]["holds"]
    assert not g["ece_after_le_before"]["holds"] and g["ece_after_le_before"]["detail"] == "a"
    assert not g["conformal_coverage_within_2pts"]["holds"]
    assert not g["selective_accuracy_ge_baseline"]["holds"]
    assert not g["default_mean_ge_5pct"]["holds"]  # mean 4%
    assert not g["served_confidence_auroc_ge_top_proba"]["holds"]
    assert g["served_confidence_auroc_ge_top_proba"]["detail"].startswith("b ")


def test_goals_judge_small_test_sets_against_their_sampling_noise() -> None:
    # 100 test + 100 calibration rows, one split: coverage s.e. ~0.042 at alpha 0.1, so 0.87 is
    # a miss of the ±2 points but within noise; 0.80 is beyond it. Both are listed.
    small = _entry(0.05, 0.0, (0.05, 0.05), 0.87, (0.89, 0.90)) | {"n_test": 100, "n_cal": 100}
    small["noise"] = {"selective_minus_baseline": -0.01, "selective_minus_baseline_se": 0.02}
    g = accuracy.summarise({"s": small})["goals"]
    cov, sel = g["conformal_coverage_within_2pts"], g["selective_accuracy_ge_baseline"]
    assert cov["holds"] and not cov["holds_strict"] and "within noise" in cov["detail"]
    assert sel["holds"] and not sel["holds_strict"] and "within noise" in sel["detail"]
    worse = small | {"conformal": [{"alpha": 0.1, "mondrian": False, "coverage": 0.80, "mean_set_size": 1.0}],
                     "noise": {"selective_minus_baseline": -0.05, "selective_minus_baseline_se": 0.02}}
    g = accuracy.summarise({"s": worse})["goals"]
    assert not g["conformal_coverage_within_2pts"]["holds"] and "beyond noise" in g["conformal_coverage_within_2pts"]["detail"]
    assert not g["selective_accuracy_ge_baseline"]["holds"]


def test_noise_helpers() -> None:
    from stream_ensemble.bench.accuracy.noise import coverage_se, mean_se, paired_loss_gap, selective_gap

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.1, 400), 0.01, 0.99)
    gap, se = paired_loss_gap(p, p, y)
    assert gap == 0.0 and se == 0.0
    gap, se = paired_loss_gap(np.full(400, 0.5), p, y)
    assert gap > 3 * se > 0  # a coin is reliably worse
    conf = np.abs(p - 0.5)
    ok = (p > 0.5) == (y == 1)
    g, gse = selective_gap(conf, ok, conf, ok, 0.8)
    assert g == 0.0 and gse == 0.0
    assert coverage_se(0.1, 100, 99, 1) == pytest.approx(math.sqrt(0.09 * 0.02))
    assert mean_se([0.3, 0.4]) == pytest.approx(0.25) and math.isnan(mean_se([0.1, math.nan]))


def test_deslib_shim_is_scoped() -> None:
    had = "_validate_data" in BaseEstimator.__dict__
    with accuracy.deslib_shim():
        assert hasattr(BaseEstimator, "_validate_data")
    assert ("_validate_data" in BaseEstimator.__dict__) == had


def test_config_and_name_errors() -> None:
    with pytest.raises(ConfigError, match="splits"):
        accuracy.BenchConfig(splits=0)
    with pytest.raises(ConfigError):
        accuracy.check_strategies(accuracy.BenchConfig(strategies=("no_such_strategy",)))
    with pytest.raises(ConfigError, match="unknown member"):
        accuracy.pool_subset(["logreg", "catboost"])
    assert [s.model_id for s in accuracy.pool_subset(SMALL_POOL)(0)] == list(SMALL_POOL)


def _mixed_dataset() -> Dataset:
    """A generated table with a categorical column and missing values (400 rows)."""
    X, y = make_classification(400, n_features=4, n_informative=3, n_redundant=0, random_state=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    frame.loc[::17, "b"] = np.nan
    frame["target"] = np.where(y == 1, "yes", "no")
    return from_frame(frame, "target", "yes", "generated")


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    bundled = load_bundled()
    data = [bundled.subset(np.arange(0, bundled.n_rows, 2)), _mixed_dataset()]
    config = accuracy.BenchConfig(splits=1, pool=accuracy.pool_subset(SMALL_POOL))
    return accuracy.run_accuracy(data, config, progress=False)


def test_tiny_end_to_end_follows_the_contract(tiny_result: dict, tmp_path: Path) -> None:
    from stream_ensemble.core.strategies import STRATEGIES

    doc = json.loads(json.dumps(jsonable(tiny_result), allow_nan=False))  # strict JSON
    assert set(doc) >= {"datasets", "summary", "protocol", "elapsed_s"}
    assert set(doc["datasets"]) == {"breast_cancer", "generated"}
    for entry in doc["datasets"].values():
        methods = entry["methods"]
        expected = {*SMALL_POOL, *(s.value for s in STRATEGIES), "best_single", "sklearn_stacking",
                    "deslib_knora_e", "default"}
        assert expected <= set(methods), expected - set(methods)
        for m in expected:
            assert {"log_loss", "accuracy", "roc_auc", "brier", "ece"} <= set(methods[m])
            assert 0.0 <= methods[m]["accuracy"] <= 1.0 and methods[m]["log_loss"] >= 0.0
        assert entry["best_single"] in SMALL_POOL
        assert methods["best_single"]["log_loss"] == methods[entry["best_single"]]["log_loss"]
        assert methods["default"] == methods[entry["default"]]
        picks = entry["validated_strategy_per_split"]
        assert len(picks) == 1 and methods["validated_strategy"] == methods[picks[0]]
        assert "validated_strategy" not in entry["strategies"]
        assert methods["best_single"]["relative_log_loss_reduction"] == 0.0
        assert set(entry["calibration"]) == {"ece_before", "ece_after"}
        levels = {(c["alpha"], c["mondrian"]) for c in entry["conformal"]}
        assert levels == {(0.05, False), (0.05, True), (0.1, False), (0.1, True)}
        assert all(0.0 <= c["coverage"] <= 1.0 for c in entry["conformal"])
        conf = entry["confidence"]
        assert {"error_auroc", "selective_accuracy_at_80", "baseline_selective_accuracy_at_80"} <= set(conf)
        assert set(conf["measures"]) >= {"top_proba", "top_x_agreement"}
        assert set(entry["methods_uncalibrated"]) >= {s.value for s in STRATEGIES}
    rel = doc["summary"]["relative_log_loss_reduction"]
    assert rel["best_single"]["mean"] == 0.0
    assert doc["summary"]["best_strategy"] in {s.value for s in STRATEGIES}
    for name, entry in doc["datasets"].items():
        d, m = entry["distilled"], entry["methods"]
        assert d["student"] == "lightgbm" and d["log_loss"] == m["distilled"]["log_loss"]
        assert d["teacher_log_loss"] == m["default"]["log_loss"] and d["best_single_log_loss"] == m["best_single"]["log_loss"]
        gain = d["best_single_log_loss"] - d["teacher_log_loss"]
        if gain > 0:
            assert d["kept_share"] == pytest.approx((d["best_single_log_loss"] - d["log_loss"]) / gain)
        else:
            assert d["kept_share"] is None and name in doc["summary"]["distilled"]["no_teacher_gain"]
        assert d["cost_ratio"] == pytest.approx(d["student_ms_per_1k"] / d["teacher_ms_per_1k"])
        assert d["student_ms_per_1k"] > 0 and d["teacher_ms_per_1k"] > 0 and 0.0 <= d["decision_agreement"] <= 1.0
        assert "distilled" not in entry["members"] and "distilled" not in entry["strategies"]
    assert set(doc["summary"]["distilled"]["per_dataset"]) == {"breast_cancer", "generated"}
    assert "distilled_keeps_95pct_cheaper" in doc["summary"]["goals"]
    assert "distilled" in doc["summary"]["relative_log_loss_reduction"]
    md = report.render_markdown(tiny_result)
    assert "## Summary" in md and "### generated" in md and "calibrated" in md
    assert "## Distilled student" in md and "| breast_cancer |" in md.split("## Distilled student")[1]
    png = report.render_png(tiny_result, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli_csv_run_writes_json_md_png(tmp_path: Path) -> None:
    X, y = make_classification(300, n_features=3, n_informative=2, n_redundant=0, random_state=2)
    frame = pd.DataFrame(X, columns=["u", "v", "w"])
    frame["label"] = y
    csv = tmp_path / "toy.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "res" / "toy.json"
    res = CliRunner().invoke(bench, [
        "accuracy", "--csv", str(csv), "--label", "label", "--positive", "1", "--out", str(out),
        "--splits", "1", "--members", ",".join(SMALL_POOL), "--strategies", "caruana,soft_voting_all",
        "--no-baselines", "--quiet",
    ])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert list(doc["datasets"]) == ["toy"]
    from stream_ensemble.core.strategies import AUTO_CANDIDATES

    # The default strategy is always built: the "default" entry reports it.
    assert set(doc["datasets"]["toy"]["strategies"]) == {c.value for c in AUTO_CANDIDATES}
    assert doc["datasets"]["toy"]["default"] in doc["datasets"]["toy"]["strategies"]
    assert out.with_suffix(".md").is_file() and out.with_suffix(".png").is_file()
    assert not out.with_suffix(".partial.json").exists()
    # --splits 1 on 60 test rows is 1 split: --min-test-rows was not given.
    toy = doc["datasets"]["toy"]
    assert toy["splits"] == 1 and len(toy["default_per_split"]) == 1
    assert toy["best_ensemble"] in toy["strategies"]
    assert toy["calibration_per_split"][0]["reason"]
    md = out.with_suffix(".md").read_text()
    assert "best ensemble (oracle)" in md and "Per-split picks" in md
    # What each split's pick cost on test, beside the best single member's.
    per_split = toy["test_log_loss_per_split"]
    assert per_split["default"][0] == pytest.approx(toy["methods"]["default"]["log_loss"])
    assert f"{per_split['default'][0]:.4f} vs {per_split['best_single'][0]:.4f}" in md
    assert doc["summary"]["goals"]["default_ge_caruana"]["holds"] == (
        doc["summary"]["relative_log_loss_reduction"]["default"]["mean"]
        >= doc["summary"]["relative_log_loss_reduction"]["caruana"]["mean"])
    # Given explicitly, it overrides --splits, and says so.
    res = CliRunner().invoke(bench, [
        "accuracy", "--csv", str(csv), "--label", "label", "--out", str(tmp_path / "more.json"), "--splits", "1",
        "--min-test-rows", "120", "--members", "logreg,naive_bayes", "--strategies", "soft_voting_all",
        "--no-baselines", "--quiet", "--budget-s", "0"])
    assert res.exit_code == 0, res.output
    assert "2 splits instead of --splits 1" in res.output
    assert json.loads((tmp_path / "more.json").read_text())["datasets"]["toy"]["splits"] == 2


def test_cli_csv_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(bench, ["accuracy", "--csv", str(tmp_path / "none.csv"), "--label", "y",
                                "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and res.output.startswith("Error: CSV file not found")
    res = runner.invoke(bench, ["accuracy", "--csv", str(tmp_path / "none.csv"), "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "--label" in res.output


def test_conformal_twins_match_predictors_fit_on_the_same_rows() -> None:
    from stream_ensemble.core.confidence.conformal import ConformalClassifier

    rng = np.random.default_rng(0)
    q = rng.uniform(size=200)
    proba = np.column_stack([1 - q, q])
    y = (rng.uniform(size=200) < 0.3 + 0.4 * q).astype(int)
    plain = ConformalClassifier(alpha=0.1).fit(proba, y)
    twin = conformal_twin(plain, mondrian=True, randomized=False)
    ref = ConformalClassifier(alpha=0.1, mondrian=True).fit(proba, y)
    assert np.array_equal(twin.threshold(0.05), ref.threshold(0.05))
    assert not np.array_equal(twin.threshold(0.1), plain.threshold(0.1))  # per-class differs here
    assert plain.mondrian is False  # the built predictor itself is untouched
    u = rng.uniform(size=50)
    rand = conformal_twin(plain, mondrian=True, randomized=True)
    ref_rand = ConformalClassifier(alpha=0.1, mondrian=True, randomized=True).fit(proba, y)
    assert np.array_equal(rand.predict_set(proba[:50], u=u), ref_rand.predict_set(proba[:50], u=u))
    assert plain.randomized is False


def test_selective_miss_says_whether_any_measure_would_have_closed_it() -> None:
    e = _entry(0.05, 0.0, (0.05, 0.05), 0.90, (0.80, 0.81)) | {"noise": {
        "selective_minus_baseline": -0.01, "selective_minus_baseline_se": 0.01}}
    e["confidence"] |= {"measure": "top_proba", "measure_per_split": ["top_proba"] * 3,
                        "measures_selective_accuracy_at_80": {"top_proba": 0.80, "margin": 0.805}}
    detail = accuracy.summarise({"g": e})["goals"]["selective_accuracy_ge_baseline"]["detail"]
    assert "served top_proba on 3/3 splits, best measure on test margin 0.8050 < baseline 0.8100" in detail
