"""Out-of-fold member fitting: rows are genuinely held out, failures are recorded, shapes hold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier

from stream_ensemble.core.data import load_bundled
from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.core.members.oof import MemberFit, fit_members, predict_members
from stream_ensemble.errors import ConfigError, ModelPoolError


class _Broken(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A member whose fit always raises."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Broken:
        raise RuntimeError("boom")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raise AssertionError("never fitted")


def _data() -> tuple[np.ndarray, np.ndarray]:
    ds = load_bundled()
    X = np.column_stack([ds.columns[c] for c in ds.numeric])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, ds.y


def _pool() -> list[ModelSpec]:
    return [
        ModelSpec("logreg", "linear", LogisticRegression(max_iter=500)),
        ModelSpec("nn1", "knn", KNeighborsClassifier(n_neighbors=1, algorithm="brute")),
        ModelSpec("broken", "none", _Broken()),
        ModelSpec("nb", "naive_bayes", GaussianNB()),
    ]


@pytest.fixture(scope="module")
def fitted() -> tuple[MemberFit, np.ndarray, np.ndarray]:
    X, y = _data()
    return fit_members(_pool(), X, y, n_folds=4, random_state=0), X, y


def test_shapes_names_and_failure_recorded(fitted: tuple[MemberFit, np.ndarray, np.ndarray]) -> None:
    mf, X, y = fitted
    assert mf.names == ["logreg", "nn1", "nb"]
    assert mf.families == ["linear", "knn", "naive_bayes"]
    assert set(mf.failed) == {"broken"} and "RuntimeError: boom" in mf.failed["broken"]
    assert mf.P_oof.shape == (X.shape[0], 3, 2) and mf.n_classes == 2
    assert np.allclose(mf.P_oof.sum(axis=2), 1.0)
    assert mf.costs_ms_per_1k.shape == (3,) and np.all(mf.costs_ms_per_1k > 0)
    assert mf.fit_seconds.shape == (3,) and np.all(mf.fit_seconds >= 0)


def test_oof_rows_are_out_of_fold(fitted: tuple[MemberFit, np.ndarray, np.ndarray]) -> None:
    mf, X, y = fitted
    j = mf.names.index("nn1")
    train_acc = np.mean(mf.estimators[j].predict(X) == y)
    oof_acc = np.mean(mf.P_oof[:, j].argmax(axis=1) == y)
    # 1-NN memorises: perfect on its own rows, clearly imperfect on rows it never saw.
    assert train_acc == 1.0
    assert oof_acc < 0.99


def test_oof_matches_manual_fold_refit() -> None:
    from sklearn.model_selection import StratifiedKFold

    X, y = _data()
    mf = fit_members([ModelSpec("nb", "naive_bayes", GaussianNB())], X, y, n_folds=3, random_state=7)
    expected = np.zeros((X.shape[0], 2))
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=7).split(X, y):
        expected[te] = GaussianNB().fit(X[tr], y[tr]).predict_proba(X[te])
    np.testing.assert_allclose(mf.P_oof[:, 0], expected)


def test_predict_members_matches_estimators_and_skips(fitted: tuple[MemberFit, np.ndarray, np.ndarray]) -> None:
    mf, X, _ = fitted
    P = predict_members(mf.estimators, X[:50], n_classes=2, run=np.array([True, False, True]))
    assert P.shape == (50, 3, 2)
    np.testing.assert_allclose(P[:, 0], mf.estimators[0].predict_proba(X[:50]))
    assert np.isnan(P[:, 1]).all()
    with pytest.raises(ConfigError):
        predict_members(mf.estimators, X[:5], run=np.array([True]))


def test_deterministic() -> None:
    X, y = _data()
    specs = [ModelSpec("logreg", "linear", LogisticRegression(max_iter=500))]
    a = fit_members(specs, X, y, n_folds=3, random_state=1)
    b = fit_members(specs, X, y, n_folds=3, random_state=1)
    np.testing.assert_array_equal(a.P_oof, b.P_oof)


def test_all_failed_and_bad_inputs() -> None:
    X, y = _data()
    with pytest.raises(ModelPoolError, match="no member"):
        fit_members([ModelSpec("broken", "none", _Broken())], X, y, n_folds=3)
    with pytest.raises(ConfigError, match="duplicate"):
        fit_members([ModelSpec("a", "x", GaussianNB()), ModelSpec("a", "x", GaussianNB())], X, y)
    with pytest.raises(ConfigError, match="n_folds"):
        fit_members([ModelSpec("a", "x", GaussianNB())], X, y, n_folds=1)
    with pytest.raises(ConfigError, match="at least"):
        fit_members([ModelSpec("a", "x", GaussianNB())], X[:8], np.array([0] * 6 + [1] * 2), n_folds=3)
