"""Flattened forests give scikit-learn's probabilities exactly; member cost has a per-call term."""

from __future__ import annotations

import pickle
import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from stream_ensemble.core.members.flat_forest import FlatForest, served_form
from stream_ensemble.core.members.oof import _time_predict


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine])
@pytest.mark.parametrize("cls", [RandomForestClassifier, ExtraTreesClassifier])
def test_same_probabilities_as_sklearn(loader: Any, cls: Any) -> None:
    X, y = loader(return_X_y=True)
    forest = cls(n_estimators=25, min_samples_leaf=2, random_state=0).fit(X[::2], y[::2])
    flat = served_form(forest)
    assert isinstance(flat, FlatForest)
    rng = np.random.default_rng(0)
    # held-out rows, jittered rows (values between thresholds) and NaN-free extremes
    Z = np.vstack([X[1::2], X[1::2] * (1 + 1e-3 * rng.standard_normal(X[1::2].shape)), X.max(axis=0)[None] * 2])
    expected = forest.predict_proba(Z)
    assert np.abs(flat.predict_proba(Z) - expected).max() <= 1e-12
    assert np.abs(flat.predict_proba(Z[:1]) - expected[:1]).max() <= 1e-12
    np.testing.assert_array_equal(flat.classes_, forest.classes_)
    again = pickle.loads(pickle.dumps(flat))
    assert np.abs(again.predict_proba(Z) - expected).max() <= 1e-12


def test_other_estimators_are_served_as_they_are() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    est = LogisticRegression(max_iter=5000).fit(X, y)
    assert served_form(est) is est


def test_wrong_width_is_refused() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    flat = FlatForest(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y))
    with pytest.raises(ValueError, match="expected"):
        flat.predict_proba(X[:, :5])


class _FixedCost:
    """5 ms per call whatever the rows: what a per-row cost figure would hide."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        time.sleep(0.005)
        return np.full((X.shape[0], 2), 0.5)


def test_member_cost_includes_the_per_call_term() -> None:
    call_ms, cost_1k = _time_predict(_FixedCost(), np.zeros((2000, 3)))
    assert call_ms >= 5.0 and cost_1k >= 5.0
