"""build(): members -> strategies -> calibrator (OOF rows) -> conformal (calibration part), and scoring."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pytest

from stream_ensemble.core.confidence.calibration import EnsembleCalibrator
from stream_ensemble.core.data import load_bundled, stratified_split
from stream_ensemble.core.evaluation import log_loss
from stream_ensemble.core.members.families import ModelSpec, default_pool
from stream_ensemble.core.members.oof import predict_members
from stream_ensemble.core.selection import SelectionConstraints
from stream_ensemble.core.training.builder import BuildConfig, BuiltEnsemble, build
from stream_ensemble.errors import ConfigError, SelectionError

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _specs() -> list[ModelSpec]:
    pool = {s.model_id: s for s in default_pool()}
    return [pool["logreg"], pool["naive_bayes"], pool["decision_tree"]]


@pytest.fixture(scope="module")
def split() -> Split:
    ds = load_bundled()
    X = np.column_stack([ds.columns[c] for c in ds.numeric])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    fit, cal, test = stratified_split(ds.y, (0.5, 0.3, 0.2), 0)
    return X[fit], ds.y[fit], X[cal], ds.y[cal], X[test], ds.y[test]


def _build(split: Split, config: BuildConfig, **kw: object) -> BuiltEnsemble:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(_specs(), *split[:4], config, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def built(split: Split) -> BuiltEnsemble:
    return _build(split, BuildConfig(strategy="bnb_stacking", n_folds=3),
                  strategies=["soft_voting_all", "caruana", "knora_e"])


def test_config_defaults_and_validation() -> None:
    c = BuildConfig()
    assert c.constraints.budget == float("inf") and c.constraints.max_members == 8
    assert c.constraints.min_diversity == 0.0 and c.constraints.metric == "log_loss"
    assert c.n_folds == 5 and c.calibration == "auto" and c.conformal_alpha == 0.1
    for bad in ({"strategy": "nope"}, {"n_folds": 1}, {"calibration": "magic"},
                {"conformal_alpha": 1.0}, {"constraints": {"budget": 1}}):
        with pytest.raises(ConfigError):
            BuildConfig(**bad)  # type: ignore[arg-type]
    # The CLI edits configs with dataclasses.replace; validation still runs.
    with pytest.raises(ConfigError):
        dataclasses.replace(c, strategy="nope")


def test_built_contents(built: BuiltEnsemble, split: Split) -> None:
    assert built.default == "bnb_stacking"
    assert set(built.strategies) == {"bnb_stacking", "soft_voting_all", "caruana", "knora_e"}
    assert set(built.calibrators) == set(built.conformals) == set(built.strategies)
    assert built.members.names == ["logreg", "naive_bayes", "decision_tree"]
    assert built.calibration_split.startswith("calibrator on OOF") and not built.failed_strategies
    X_cal, y_cal = split[2], split[3]
    P_cal = predict_members(built.members.estimators, X_cal)
    for j, name in enumerate(built.members.names):
        m = built.member_metrics[name]
        assert set(m) == {"log_loss", "accuracy", "roc_auc", "brier"}
        assert m["log_loss"] == pytest.approx(log_loss(P_cal[:, j], y_cal))
    assert built.strategy_metrics["bnb_stacking"]["log_loss"] > 0


def test_calibrator_on_oof_rows_conformal_on_calibration_part(built: BuiltEnsemble, split: Split) -> None:
    X_fit, y_fit, X_cal, y_cal = split[0], split[1], split[2], split[3]
    name = "caruana"
    st = built.strategies[name]
    oof = st.predict_proba(built.members.P_oof, np.ones(built.members.P_oof.shape[:2], bool), X_fit)[:, 1]
    ref = EnsembleCalibrator(method="auto", random_state=built.config.random_state).fit(oof, y_fit)
    cal = built.calibrators[name]
    assert cal is not None and cal.method_ == ref.method_
    P_cal = predict_members(built.members.estimators, X_cal)
    raw = st.predict_proba(P_cal, np.ones(P_cal.shape[:2], bool))[:, 1]
    np.testing.assert_allclose(cal.transform(raw), ref.transform(raw))
    q = ref.transform(raw)
    scores = np.sort(1.0 - np.where(y_cal == 1, q, 1.0 - q))
    k = int(np.ceil((y_cal.size + 1) * (1 - built.config.conformal_alpha)))
    np.testing.assert_allclose(built.conformals[name].threshold(), scores[k - 1])


def test_score_outputs_and_coverage(built: BuiltEnsemble, split: Split) -> None:
    X_test, y_test = split[4], split[5]
    for name in built.strategies:
        out = built.predict(X_test, strategy=name)
        n = X_test.shape[0]
        assert out["proba"].shape == (n, 2) and out["raw_proba"].shape == (n, 2)
        np.testing.assert_allclose(out["proba"].sum(axis=1), 1.0)
        np.testing.assert_array_equal(out["decision"], (out["positive"] >= 0.5).astype(int))
        assert out["prediction_set"].dtype == bool and out["used"].shape == (n, 3)
        coverage = out["prediction_set"][np.arange(n), y_test].mean()
        # One 113-row test split: a sanity floor only (the guarantee is checked below).
        assert coverage >= 0.7
    with pytest.raises(ConfigError, match="not built"):
        built.score(np.zeros((1, 3, 2)), np.ones((1, 3), bool), strategy="boosting")


def test_conformal_coverage_over_resampled_calibration_test_splits(built: BuiltEnsemble, split: Split) -> None:
    """Split-conformal coverage is a guarantee on average over exchangeable splits: re-split
    the held-out rows many times, fit on one half, measure on the other."""
    from stream_ensemble.core.confidence.conformal import ConformalClassifier

    X_held = np.vstack([split[2], split[4]])
    y_held = np.concatenate([split[3], split[5]])
    proba = built.predict(X_held)["proba"]
    rng = np.random.default_rng(0)
    covs = []
    for _ in range(200):
        perm = rng.permutation(y_held.size)
        a, b = perm[: y_held.size // 2], perm[y_held.size // 2 :]
        sets = ConformalClassifier(alpha=0.1).fit(proba[a], y_held[a]).predict_set(proba[b])
        covs.append(sets[np.arange(b.size), y_held[b]].mean())
    assert abs(np.mean(covs) - 0.9) <= 0.02


def test_served_sets_are_randomized_but_a_function_of_the_row(built: BuiltEnsemble, split: Split) -> None:
    # The same event gets the same set whatever batch it arrives in (replays, cache misses).
    X_test = split[4]
    assert built.config.conformal_randomized and built.conformals[built.default].randomized
    sets = built.predict(X_test)["prediction_set"]
    perm = np.random.default_rng(1).permutation(X_test.shape[0])
    np.testing.assert_array_equal(built.predict(X_test[perm])["prediction_set"], sets[perm])
    np.testing.assert_array_equal(built.predict(X_test[:7])["prediction_set"], sets[:7])


def test_unhealthy_member_and_pickle(built: BuiltEnsemble, split: Split) -> None:
    X_test = split[4]
    full = built.predict(X_test)
    best = int(np.argmax(full["used"].sum(axis=0)))
    healthy = np.ones(3, bool)
    healthy[best] = False
    out = built.predict(X_test, healthy=healthy)
    assert not out["used"][:, best].any()
    np.testing.assert_allclose(out["proba"].sum(axis=1), 1.0)
    again = pickle.loads(pickle.dumps(built))
    for key, value in built.predict(X_test, strategy="knora_e").items():
        np.testing.assert_array_equal(again.predict(X_test, strategy="knora_e")[key], value)


def test_deterministic(built: BuiltEnsemble, split: Split) -> None:
    other = _build(split, BuildConfig(strategy="bnb_stacking", n_folds=3))
    X_test = split[4]
    np.testing.assert_array_equal(other.predict(X_test)["proba"], built.predict(X_test)["proba"])


def test_failed_strategy_recorded_default_raises(split: Split) -> None:
    tiny = SelectionConstraints(budget=1e-9)
    ok = _build(split, BuildConfig(strategy="soft_voting_all", n_folds=3, constraints=tiny),
                strategies=["bnb_soft"])
    assert set(ok.strategies) == {"soft_voting_all"}
    assert "SelectionError" in ok.failed_strategies["bnb_soft"]
    with pytest.raises(SelectionError):
        _build(split, BuildConfig(strategy="bnb_soft", n_folds=3, constraints=tiny))
