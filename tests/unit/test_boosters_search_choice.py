"""LightGBM/XGBoost members, the budgeted hyperparameter search and the validated choices."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from stream_ensemble.core.members.boosters import LightGBMMember, XGBoostMember
from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.core.members.search import tune_specs
from stream_ensemble.core.training.choice import choose_confidence, choose_strategy
from stream_ensemble.errors import ConfigError


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(600, n_features=6, n_informative=4, random_state=0)
    return X, y


@pytest.mark.parametrize("cls", [LightGBMMember, XGBoostMember])
def test_booster_stops_early_and_predicts_natively(cls: type, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    est = clone(cls(n_estimators=3000, learning_rate=0.3, random_state=0)).fit(X[:400], y[:400])
    assert 1 <= est.best_iteration_ < 3000  # early stopping ended it
    p = est.predict_proba(X[400:])
    assert p.shape == (200, 2) and np.allclose(p.sum(1), 1.0)
    assert (est.predict(X[400:]) == y[400:]).mean() > 0.8
    assert np.allclose(pickle.loads(pickle.dumps(est)).predict_proba(X[400:]), p)


@pytest.mark.parametrize("cls", [LightGBMMember, XGBoostMember])
def test_booster_k_classes_keeps_label_order(cls: type) -> None:
    X, y = make_classification(400, n_features=6, n_informative=4, n_classes=3, random_state=1)
    labels = np.array([7, 2, 5])[y]
    est = cls(random_state=0).fit(X, labels)
    assert est.classes_.tolist() == [2, 5, 7]
    p = est.predict_proba(X)
    assert p.shape == (400, 3) and (est.predict(X) == labels).mean() > 0.8


def test_search_picks_the_lowest_validation_loss(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    spec = ModelSpec("lr", "linear", LogisticRegression(max_iter=500),
                     search=({"C": 1e-6}, {"C": 1.0}))
    fixed = ModelSpec("plain", "linear", LogisticRegression(max_iter=500))
    out, reports = tune_specs([spec, fixed], X, y, random_state=0)
    assert reports["lr"].chosen == 1 and out[0].estimator.C == 1.0 and out[0].search == ()
    assert out[1] is fixed and "plain" not in reports
    # A zero budget still tries every member's first candidate, nothing more.
    _, cheap = tune_specs([spec], X, y, budget_s=0.0)
    assert cheap["lr"].val_log_loss[1] is None and cheap["lr"].chosen == 0
    with pytest.raises(ConfigError):
        tune_specs([spec], X, y, budget_s=-1.0)


def test_strategy_choice_records_runner_up_and_gap() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.5, 500)
    choice = choose_strategy({"a": base + 0.01, "b": base, "c": base + 0.2})
    assert (choice.chosen, choice.runner_up) == ("b", "a")
    assert choice.detail["gap"] == pytest.approx(0.01) and choice.as_dict()["scores"]["c"] > 0.3


def test_confidence_keeps_top_proba_unless_another_measure_is_reliably_better() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    correct = rng.uniform(size=n) < 0.8
    signal = np.where(correct, 0.7, 0.5) + rng.normal(0, 0.2, n)
    noisy = signal + rng.normal(0, 0.001, n)  # same ranking power, tiny noise
    tie = choose_confidence({"top_proba": signal, "other": noisy}, correct)
    assert tie.chosen == "top_proba"
    better = np.where(correct, 0.9, 0.3) + rng.normal(0, 0.1, n)
    win = choose_confidence({"top_proba": signal, "other": better}, correct)
    assert win.chosen == "other" and win.detail["lead_over_top_proba"] > win.detail["lead_se"]


def test_strategy_choice_serves_the_lowest_loss_even_within_noise_and_records_each_part() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.5, 150)
    # "complex" is 0.005 lower on average, well inside the paired noise (SE ~0.008): still
    # served -- no bias toward the head of the list (the one-SE rule served "simple" here).
    jitter = 0.1 * np.where(np.arange(150) % 2 == 0, 1.0, -1.0)
    noisy = choose_strategy({"simple": base, "complex": base - 0.005 + jitter},
                            {"crossfit": slice(0, 100), "calibration": slice(100, 150)})
    assert (noisy.chosen, noisy.runner_up) == ("complex", "simple")
    assert 0 < noisy.detail["gap"] <= noisy.detail["gap_se"] and noisy.detail["rows"] == 150
    assert noisy.detail["calibration:simple"] == pytest.approx(float(base[100:].mean()))
    assert noisy.detail["crossfit:complex"] == pytest.approx(float((base - 0.005 + jitter)[:100].mean()))
    # Exact ties keep the first (simplest) candidate listed.
    tie = choose_strategy({"simple": base, "complex": base.copy()})
    assert tie.chosen == "simple" and tie.detail["gap"] == 0.0


def test_strategy_guard_serves_best_member_unless_the_lead_beats_the_noise() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 0.5, 150)
    jitter = 0.1 * np.where(np.arange(150) % 2 == 0, 1.0, -1.0)
    close = {"best_member": base, "complex": base - 0.005 + jitter}  # lead 0.005, SE ~0.008
    guarded = choose_strategy(close, fallback="best_member", guard_z=1.0)
    assert (guarded.chosen, guarded.runner_up) == ("best_member", "complex")
    assert guarded.detail["guarded"] == 1.0 and guarded.detail["lead:complex"] == pytest.approx(0.005)
    assert 0 < guarded.detail["lead:complex"] <= guarded.detail["lead_se:complex"]
    # No guard: the lowest loss, and the leads are still recorded.
    plain = choose_strategy(close, fallback="best_member", guard_z=0.0)
    assert plain.chosen == "complex" and plain.detail["guarded"] == 0.0
    # A lead far beyond its SE is served through the guard.
    clear = {"best_member": base, "complex": base - 0.05 + 0.1 * jitter}
    won = choose_strategy(clear, fallback="best_member", guard_z=1.0)
    assert won.chosen == "complex" and won.detail["guarded"] == 0.0
    assert won.detail["lead:complex"] > won.detail["lead_se:complex"]
    with pytest.raises(ConfigError):
        choose_strategy(close, fallback="best_member", guard_z=-1.0)


def test_confidence_switch_needs_more_than_one_se_per_alternative_looked_at() -> None:
    rng = np.random.default_rng(0)
    n = 400
    correct = rng.uniform(size=n) < 0.8
    signal = np.where(correct, 0.7, 0.5) + rng.normal(0, 0.2, n)
    others = {f"m{i}": signal + rng.normal(0, 0.05, n) for i in range(7)}
    choice = choose_confidence({"top_proba": signal, **others}, correct)
    assert choice.chosen == "top_proba"
    if choice.detail:  # an alternative led: it was kept out unless beyond z SEs
        assert choice.detail["z"] == pytest.approx(2.45, abs=0.01)
        assert choice.detail["lead_over_top_proba"] <= choice.detail["z"] * choice.detail["lead_se"]


def test_cross_fitted_fit_rows_join_the_choice_only_when_asked() -> None:
    from stream_ensemble.core.members.families import default_pool
    from stream_ensemble.core.training.builder import BuildConfig, build

    X, y = make_classification(300, n_features=6, n_informative=4, random_state=3)
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes", "decision_tree"}]
    fit, cal = slice(0, 200), slice(200, 300)
    crossed = build(specs, X[fit], y[fit], X[cal], y[cal], BuildConfig(n_folds=3, crossfit_below=2000))
    assert crossed.strategy_choice is not None and crossed.strategy_choice.detail["rows"] == 300
    assert "crossfit + calibration" in crossed.strategy_choice.rule
    only_cal = build(specs, X[fit], y[fit], X[cal], y[cal], BuildConfig(n_folds=3))  # the default: off
    assert only_cal.strategy_choice is not None and only_cal.strategy_choice.detail["rows"] == 100
    # The calibration-part scores are the same rows either way; the evidence differs.
    assert crossed.strategy_choice.scores != only_cal.strategy_choice.scores
    with pytest.raises(ConfigError):
        BuildConfig(crossfit_below=-1)
