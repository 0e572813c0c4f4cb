"""Split-conformal sets: hand oracles and finite-sample coverage on exchangeable data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from stream_ensemble.core.confidence.conformal import (
    ConformalClassifier,
    class_coverage,
    coverage,
    empty_rate,
    mean_set_size,
    row_uniforms,
)
from stream_ensemble.errors import CombinerError, ConfigError


def _exchangeable(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels from sigmoid(2x); the 'model' reports a miscalibrated sigmoid(3x + 0.5)."""
    x = rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-2 * x))).astype(int)
    p = 1 / (1 + np.exp(-(3 * x + 0.5)))
    return np.column_stack([1 - p, p]), y


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("mondrian", [False, True])
def test_coverage_within_two_points(alpha: float, mondrian: bool) -> None:
    rng = np.random.default_rng(12345)
    p_cal, y_cal = _exchangeable(2000, rng)
    p_test, y_test = _exchangeable(20_000, rng)
    sets = ConformalClassifier(alpha=alpha, mondrian=mondrian).fit(p_cal, y_cal).predict_set(p_test)
    assert abs(coverage(sets, y_test) - (1 - alpha)) <= 0.02
    if mondrian:
        per_class = class_coverage(sets, y_test)
        assert np.all(np.abs(per_class - (1 - alpha)) <= 0.02), per_class


def test_hand_threshold_and_sets() -> None:
    cal = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # scores 0.1, 0.2, 0.4, 0.3; alpha 0.25: k = ceil(5 * 0.75) = 4 -> 0.4
    cp = ConformalClassifier(alpha=0.25).fit(cal, y)
    np.testing.assert_allclose(cp.threshold(), [0.4, 0.4])
    # alpha 0.5: k = ceil(2.5) = 3 -> 0.3
    np.testing.assert_allclose(cp.threshold(0.5), [0.3, 0.3])
    sets = cp.predict_set(np.array([[0.65, 0.35], [0.5, 0.5], [0.62, 0.38]]), alpha=0.5)
    assert sets.tolist() == [[False, False], [False, False], [False, False]]
    sets = cp.predict_set(np.array([[0.75, 0.25], [0.5, 0.5]]))
    assert sets.tolist() == [[True, False], [False, False]]
    assert empty_rate(sets) == pytest.approx(0.5)


def test_mondrian_thresholds_per_class() -> None:
    cal = np.array([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    y = np.array([0, 0, 0, 1, 1, 1])
    # class 0 scores 0.1, 0.3, 0.5; class 1 scores 0.2, 0.4, 0.1; alpha 0.5: k = ceil(2) = 2.
    cp = ConformalClassifier(alpha=0.5, mondrian=True).fit(cal, y)
    np.testing.assert_allclose(cp.threshold(), [0.3, 0.2])
    # too small a split for alpha 0.1 -> +inf (every class included)
    assert np.all(np.isinf(cp.threshold(0.1)))
    assert cp.predict_set(np.array([[0.01, 0.99]]), alpha=0.1).all()


def test_missing_class_in_mondrian_calibration_is_always_included() -> None:
    cal = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    cp = ConformalClassifier(alpha=0.5, mondrian=True).fit(cal, np.array([0, 0]))
    t = cp.threshold()
    assert math.isfinite(t[0]) and np.isinf(t[1]) and np.isinf(t[2])


def test_smaller_alpha_gives_nested_larger_sets_without_refit() -> None:
    rng = np.random.default_rng(1)
    p_cal, y_cal = _exchangeable(500, rng)
    p_test, _ = _exchangeable(1000, rng)
    cp = ConformalClassifier().fit(p_cal, y_cal)
    wide, narrow = cp.predict_set(p_test, alpha=0.05), cp.predict_set(p_test, alpha=0.3)
    assert np.all(wide >= narrow)
    assert mean_set_size(wide) > mean_set_size(narrow)


def test_set_metrics_hand() -> None:
    sets = np.array([[True, True], [False, True], [False, False], [True, False]])
    y = np.array([0, 0, 1, 0])
    assert coverage(sets, y) == pytest.approx(0.5)
    assert mean_set_size(sets) == pytest.approx(1.0)
    assert empty_rate(sets) == pytest.approx(0.25)
    per = class_coverage(sets, y)
    assert per[0] == pytest.approx(2 / 3) and per[1] == pytest.approx(0.0)


def test_errors() -> None:
    cal = np.array([[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(NotFittedError):
        ConformalClassifier().predict_set(cal)
    with pytest.raises(ConfigError):
        ConformalClassifier(alpha=1.5).fit(cal, np.array([0, 1]))
    cp = ConformalClassifier().fit(cal, np.array([0, 1]))
    with pytest.raises(ConfigError):
        cp.predict_set(cal, alpha=0.0)
    with pytest.raises(CombinerError):
        cp.predict_set(np.full((1, 3), 1 / 3))
    with pytest.raises(CombinerError):
        ConformalClassifier().fit(cal, np.array([0, 2]))


def _tied(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """95% of rows get an exact 0/1 probability on their true class (a nearly separable task)."""
    y = rng.integers(0, 2, n)
    p = np.where(rng.uniform(size=n) < 0.95, y.astype(float), rng.uniform(0.2, 0.8, n))
    return np.column_stack([1 - p, p]), y


@pytest.mark.parametrize("mondrian", [False, True])
def test_randomized_sets_are_exact_under_ties_where_deterministic_ones_over_cover(mondrian: bool) -> None:
    # Small calibration splits with many tied scores: the deterministic rule over-covers by
    # more than 2 points, the smoothed p-value rule averages exactly 1 - alpha.
    rng = np.random.default_rng(7)
    alpha, det, rnd = 0.1, [], []
    for _ in range(400):
        p_cal, y_cal = _tied(40, rng)
        p_test, y_test = _tied(200, rng)
        cp = ConformalClassifier(alpha=alpha, mondrian=mondrian).fit(p_cal, y_cal)
        det.append(coverage(cp.predict_set(p_test), y_test))
        cp.randomized = True
        rnd.append(coverage(cp.predict_set(p_test, u=rng.uniform(size=200)), y_test))
    assert np.mean(det) - (1 - alpha) > 0.02
    assert abs(np.mean(rnd) - (1 - alpha)) < 0.01


def test_randomized_sets_are_subsets_of_deterministic_ones_and_equal_as_u_tends_to_1() -> None:
    rng = np.random.default_rng(3)
    p_cal, y_cal = _exchangeable(30, rng)
    p, _ = _exchangeable(1000, rng)
    det = ConformalClassifier(alpha=0.1).fit(p_cal, y_cal)
    rnd = ConformalClassifier(alpha=0.1, randomized=True).fit(p_cal, y_cal)
    sets = rnd.predict_set(p, u=rng.uniform(size=1000))
    assert np.all(sets <= det.predict_set(p)) and sets.sum() < det.predict_set(p).sum()
    assert np.array_equal(rnd.predict_set(p, u=np.full(1000, 1 - 1e-12)), det.predict_set(p))
    with pytest.raises(CombinerError, match="tie-breaking"):
        rnd.predict_set(p)
    with pytest.raises(CombinerError, match="uniforms for"):
        rnd.predict_set(p, u=np.zeros(3))


def test_row_uniforms_are_deterministic_and_uniform() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50_000, 6))
    u = row_uniforms(X)
    assert u.shape == (50_000,) and np.array_equal(u, row_uniforms(X.copy()))
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 5000) < 5 * math.sqrt(5000))  # 5 sigma per bin
    # Rows that differ in one feature get unrelated values.
    Y = X.copy()
    Y[:, 3] += 1e-9
    assert abs(np.corrcoef(u, row_uniforms(Y))[0, 1]) < 0.02
