"""Artifact formats: every strategy, member and calibrator round-trips exactly; the trusted list is complete."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from stream_ensemble.core.confidence.calibration import CalibrationMethod, EnsembleCalibrator
from stream_ensemble.core.confidence.conformal import ConformalClassifier
from stream_ensemble.core.confidence.temperature import TemperatureCalibrator
from stream_ensemble.core.data import load_bundled, stratified_split
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.families import default_pool
from stream_ensemble.core.members.oof import MemberFit, fit_members, predict_members
from stream_ensemble.core.members.user import ClassColumns
from stream_ensemble.core.registry import TRUSTED_TYPES, Registry, RegistrySecurity, choose_format, untrusted_types
from stream_ensemble.core.registry.formats import _register_enum_state
from stream_ensemble.core.strategies import STRATEGIES, SelectorKind, fit_strategy
from stream_ensemble.errors import ModelPoolError

Fitted = dict[str, object]


@pytest.fixture(scope="module")
def data() -> tuple[MemberFit, np.ndarray, np.ndarray, np.ndarray]:
    ds = load_bundled()
    X = np.column_stack([ds.columns[c] for c in ds.numeric])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    fit, test = stratified_split(ds.y, (0.7, 0.3), 0)
    pool = {s.model_id: s for s in default_pool()}
    specs = [pool[m] for m in ("logreg", "naive_bayes", "decision_tree", "knn")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = fit_members(specs, X[fit], ds.y[fit], n_folds=4)
    return mf, X[fit], ds.y[fit], X[test]


@pytest.fixture(scope="module")
def strategies(data: tuple[MemberFit, np.ndarray, np.ndarray, np.ndarray]) -> Fitted:
    mf, X_fit, y_fit, _ = data
    return {name.value: fit_strategy(name, mf.P_oof, y_fit, costs=mf.costs_ms_per_1k, X_oof=X_fit,
                                     member_names=mf.names) for name in STRATEGIES}


@pytest.fixture(scope="module")
def members() -> Fitted:
    ds = load_bundled()
    X, y = np.column_stack([ds.columns[c] for c in ds.numeric])[:300], ds.y[:300]
    out: Fitted = {}
    for spec in default_pool():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[spec.model_id] = spec.estimator.fit(X, y)
    return out


@pytest.fixture(scope="module")
def user_members() -> Fitted:
    """What `models add` stores: users' pipelines, an MLP trained with SGD, reordered columns."""
    ds = load_bundled()
    X, y = np.column_stack([ds.columns[c] for c in ds.numeric])[:300], ds.y[:300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = make_pipeline(StandardScaler(), MLPClassifier(solver="sgd", max_iter=20, random_state=0)).fit(X, y)
    users: Fitted = {
        "calibrated": CalibratedClassifierCV(LogisticRegression(max_iter=200), cv=3),
        "imputed-pipeline": make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=200)),
        "grid-search": GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=3),
        "kd-tree-knn": KNeighborsClassifier(algorithm="kd_tree"),
        "ball-tree-knn": KNeighborsClassifier(algorithm="ball_tree"),
        "voting": VotingClassifier([("t", DecisionTreeClassifier()), ("l", LogisticRegression(max_iter=200))],
                                   voting="soft"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in users.values():
            est.fit(X, y)  # type: ignore[attr-defined]
    return {**users, "sgd-mlp": mlp, "reordered": ClassColumns(mlp, [1, 0])}


def _proba2() -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(np.random.default_rng(0).beta(2, 2, size=(200, 2)), 0.01, 0.99)
    p /= p.sum(axis=1, keepdims=True)
    return p, (p[:, 1] > 0.5).astype(np.int64)


@pytest.fixture(scope="module")
def state() -> Fitted:
    """The rest of an ensemble's state: encoder, every calibration map, conformal sets."""
    ds = load_bundled()
    p, labels = _proba2()
    p3 = np.random.default_rng(1).dirichlet([1, 1, 1], size=200)
    out: Fitted = {f"cal-{m.value}": EnsembleCalibrator(method=m.value).fit(p, labels) for m in CalibrationMethod}
    out["temperature"] = TemperatureCalibrator().fit(p3, np.argmax(p3, axis=1))
    out["encoder"] = FeatureEncoder(ds.numeric, ds.categorical).fit(ds.columns)
    out["conformal"] = ConformalClassifier(0.1, False, True).fit(p, labels)
    return out


def _types_in(obj: object) -> set[str]:
    import skops.io as sio

    _register_enum_state()
    return set(sio.get_untrusted_types(data=sio.dumps(obj)))


def test_every_strategy_round_trips_exactly_and_reselects(data: tuple[MemberFit, np.ndarray, np.ndarray, np.ndarray],
                                                          strategies: Fitted, tmp_path: Path) -> None:
    mf, _, _, X_test = data
    reg = Registry(tmp_path, RegistrySecurity())
    P = predict_members(mf.estimators, X_test)
    n = len(mf.names)
    # all healthy, one down, two down: the re-selection path that broke when enums came back as str
    masks = [np.ones(n, bool), np.r_[False, np.ones(n - 1, bool)], np.array([True, False, True, False])]
    for name, st in strategies.items():
        ref = reg.save("ensembles", name, {"strategy": st}, {})
        again = reg.load("ensembles", name)[0]["strategy"]
        assert type(again.spec_.selector) is SelectorKind  # enums stay enums
        for h in masks:
            avail = np.broadcast_to(h, P.shape[:2]).copy()
            np.testing.assert_array_equal(st.predict_proba(P, avail, X_test),  # type: ignore[attr-defined]
                                          again.predict_proba(P, avail, X_test), err_msg=f"{ref.tag} healthy={h}")


def test_default_pool_members_and_ensemble_state_round_trip(members: Fitted, state: Fitted, tmp_path: Path) -> None:
    ds = load_bundled()
    X = np.column_stack([ds.columns[c] for c in ds.numeric])
    reg = Registry(tmp_path, RegistrySecurity())
    for name, est in members.items():
        reg.save("models", name, est, {})
        again, manifest = reg.load("models", name)
        assert manifest["format"] == "skops" and manifest["artifact"] == "model.skops"
        np.testing.assert_array_equal(est.predict_proba(X), again.predict_proba(X), err_msg=name)  # type: ignore[attr-defined]
    reg.save("ensembles", "state", state, {})
    again = reg.load("ensembles", "state")[0]
    p, labels = _proba2()
    p3 = np.random.default_rng(1).dirichlet([1, 1, 1], size=200)
    for name, obj in state.items():
        if name.startswith("cal-"):
            np.testing.assert_array_equal(obj.transform(p), again[name].transform(p))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(state["temperature"].transform(p3), again["temperature"].transform(p3))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(state["encoder"].transform_columns(ds.columns),  # type: ignore[attr-defined]
                                  again["encoder"].transform_columns(ds.columns))
    u = np.random.default_rng(2).uniform(size=len(p))
    np.testing.assert_array_equal(state["conformal"].predict_set(p, u=u), again["conformal"].predict_set(p, u=u))  # type: ignore[attr-defined]


def test_trusted_list_is_exactly_what_the_project_writes(strategies: Fitted, members: Fitted, user_members: Fitted,
                                                        state: Fitted, tmp_path: Path) -> None:
    # Complete: every type the project's artifacts hold is listed (else saving them fails);
    # minimal: every listed type occurs in one of them.
    reg = Registry(tmp_path, RegistrySecurity())
    X = np.random.default_rng(0).normal(size=(20, 30))
    for name, est in user_members.items():
        reg.save("models", name, est, {})
        np.testing.assert_array_equal(est.predict_proba(X), reg.load("models", name)[0].predict_proba(X))  # type: ignore[attr-defined]
    used: set[str] = set()
    for obj in (*strategies.values(), *members.values(), *user_members.values(), *state.values()):
        used |= _types_in(obj)
    assert used - set(TRUSTED_TYPES) == set()
    assert set(TRUSTED_TYPES) - used == set()


def test_user_models_native_formats(tmp_path: Path) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    ds = load_bundled()
    X = np.column_stack([ds.columns[c] for c in ds.numeric])
    reg = Registry(tmp_path, RegistrySecurity())
    clf = xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, ds.y)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(X, ds.y), 20)
    pipe = make_pipeline(StandardScaler(), default_pool()[0].estimator).fit(X, ds.y)
    for name, obj, fmt, artifact in (("xgb", clf, "xgboost", "model.ubj"), ("xgb-booster", clf.get_booster(), "xgboost", "model.ubj"),
                                     ("lgb", booster, "lightgbm", "model.txt"), ("pipe", pipe, "skops", "model.skops")):
        assert choose_format(obj) == fmt
        reg.save("models", name, obj, {})
        again, manifest = reg.load("models", name)
        assert (manifest["format"], manifest["artifact"], type(again)) == (fmt, artifact, type(obj))
    np.testing.assert_array_equal(clf.predict_proba(X), reg.load("models", "xgb")[0].predict_proba(X))
    np.testing.assert_array_equal(booster.predict(X), reg.load("models", "lgb")[0].predict(X))
    np.testing.assert_array_equal(pipe.predict_proba(X), reg.load("models", "pipe")[0].predict_proba(X))


class _Custom:
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), 2), 0.5)


def test_untrusted_object_is_refused_at_save_time(tmp_path: Path) -> None:
    reg = Registry(tmp_path, RegistrySecurity())
    assert untrusted_types(_Custom()) and untrusted_types(default_pool()[0].estimator) == []
    with pytest.raises(ModelPoolError, match=r"cannot store a .*_Custom in the skops format: .*_Custom"):
        reg.save("models", "custom", _Custom(), {})
    assert reg.versions("models", "custom") == []  # nothing half-written
    assert not [p for p in (tmp_path / "models" / "custom").iterdir()]
