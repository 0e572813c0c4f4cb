"""EnsembleCalibrator: improves an over-confident ensemble, honours its contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from stream_ensemble.core.confidence.calibration import CalibrationMethod, EnsembleCalibrator
from stream_ensemble.core.evaluation import expected_calibration_error, log_loss
from stream_ensemble.errors import CombinerError, ConfigError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True probability q; the ensemble reports sigmoid(3 logit q) (over-confident)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.03, 0.97, n)
    y = (rng.uniform(size=n) < q).astype(int)
    return _sigmoid(3 * _logit(q)), y


@pytest.mark.parametrize("method", ["auto", "platt", "isotonic"])
def test_calibration_reduces_ece_and_log_loss_on_fresh_rows(method: str) -> None:
    p_fit, y_fit = _overconfident(4000, seed=0)
    p_test, y_test = _overconfident(4000, seed=1)
    cal = EnsembleCalibrator(method=method).fit(p_fit, y_fit)
    q = cal.transform(p_test)
    assert expected_calibration_error(q, y_test) < 0.5 * expected_calibration_error(p_test, y_test)
    assert log_loss(q, y_test) < log_loss(p_test, y_test)


def test_auto_picks_lowest_cv_score_and_rejects_none_when_miscalibrated() -> None:
    p, y = _overconfident(3000, seed=2)
    cal = EnsembleCalibrator(method="auto", cv=4).fit(p, y)
    assert set(cal.cv_scores_) == {"none", "platt", "isotonic"}
    assert cal.method_ is not CalibrationMethod.NONE
    assert cal.cv_scores_[cal.method_.value] == min(cal.cv_scores_.values())
    # Data generated exactly by a Platt map: Platt should beat identity by a wide margin.
    assert cal.cv_scores_["platt"] < cal.cv_scores_["none"] - 0.01


def test_platt_recovers_known_map() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, 20_000)
    truth = _sigmoid(0.5 * _logit(p) + 0.3)
    y = (rng.uniform(size=p.size) < truth).astype(int)
    cal = EnsembleCalibrator(method="platt").fit(p, y)
    grid = np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(cal.transform(grid), _sigmoid(0.5 * _logit(grid) + 0.3), atol=0.03)


def test_auto_keeps_none_when_a_class_is_too_rare_for_cv() -> None:
    p = np.array([0.2, 0.3, 0.9, 0.1, 0.4])
    y = np.array([0, 0, 1, 0, 0])
    cal = EnsembleCalibrator().fit(p, y)
    assert cal.method_ is CalibrationMethod.NONE
    np.testing.assert_allclose(cal.transform(p), p)


def test_output_clipped_so_log_loss_is_finite() -> None:
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 0.5])
    y = np.array([0, 0, 1, 1, 0, 1])
    for method in ("isotonic", "none", "platt"):
        q = EnsembleCalibrator(method=method).fit(p, y).transform(np.array([0.0, 1.0, -1e-3]))
        assert q.min() >= 1e-6 and q.max() <= 1 - 1e-6
        assert np.isfinite(log_loss(q, np.array([1, 0, 1])))


def test_isotonic_clips_out_of_range_inputs() -> None:
    p = np.linspace(0.3, 0.7, 50)
    y = (p > 0.5).astype(int)
    q = EnsembleCalibrator(method="isotonic").fit(p, y).transform(np.array([0.01, 0.99]))
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(q, [1e-6, 1 - 1e-6])


def test_predict_proba_two_columns_and_accepts_two_column_input() -> None:
    p, y = _overconfident(500, seed=4)
    cal = EnsembleCalibrator(method="platt").fit(np.column_stack([1 - p, p]), y)
    out = cal.predict_proba(p)
    assert out.shape == (500, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out[:, 1], cal.transform(p))


def test_deterministic_and_clonable() -> None:
    p, y = _overconfident(1000, seed=5)
    a = EnsembleCalibrator(random_state=7).fit(p, y)
    b = clone(a).fit(p, y)
    assert a.cv_scores_ == b.cv_scores_
    np.testing.assert_array_equal(a.transform(p), b.transform(p))
    assert clone(a).get_params() == {"method": "auto", "cv": 5, "random_state": 7, "isotonic_min_rows": 1000}


def test_auto_never_picks_isotonic_on_a_small_calibration_set() -> None:
    # A step-shaped truth that isotonic fits best when it has enough rows.
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, 3000)
    y = (rng.uniform(size=3000) < np.where(p > 0.5, 0.9, 0.1)).astype(int)
    big = EnsembleCalibrator(method="auto").fit(p, y)
    small = EnsembleCalibrator(method="auto").fit(p[:150], y[:150])
    assert big.method_.value == "isotonic"
    assert small.method_.value != "isotonic" and "isotonic" not in small.cv_scores_


def test_errors() -> None:
    p, y = _overconfident(100, seed=6)
    with pytest.raises(NotFittedError):
        EnsembleCalibrator().transform(p)
    with pytest.raises(ConfigError):
        EnsembleCalibrator(method="beta").fit(p, y)
    with pytest.raises(ConfigError):
        EnsembleCalibrator(cv=1).fit(p, y)
    with pytest.raises(CombinerError):
        EnsembleCalibrator().fit(np.full((100, 3), 1 / 3), y)
    with pytest.raises(CombinerError):
        EnsembleCalibrator().fit(p, y + 1)
    with pytest.raises(CombinerError):
        EnsembleCalibrator().fit(np.where(p > 0.5, np.nan, p), y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_never_picks_a_map_that_worsens_cross_validated_ece(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, 600)
    y = (rng.uniform(size=600) < p).astype(int)  # already calibrated
    cal = EnsembleCalibrator(method="auto").fit(p, y)
    assert cal.cv_ece_[cal.method_.value] <= cal.cv_ece_["none"]
