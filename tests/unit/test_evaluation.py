"""Metrics against small hand-computed oracles and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from stream_ensemble.core import evaluation as ev
from stream_ensemble.errors import CombinerError, ConfigError


def test_log_loss_hand_oracle_and_1d_2d_agree() -> None:
    p = np.array([0.8, 0.3])
    y = np.array([1, 0])
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert ev.log_loss(p, y) == pytest.approx(expected)
    assert ev.log_loss(np.column_stack([1 - p, p]), y) == pytest.approx(expected)


def test_log_loss_matches_sklearn_multiclass() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, 200)
    assert ev.log_loss(p, y) == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2, 3]))


def test_log_loss_finite_at_zero_probability() -> None:
    assert math.isfinite(ev.log_loss(np.array([0.0]), np.array([1])))


def test_accuracy_binary_threshold_and_multiclass_argmax() -> None:
    assert ev.accuracy(np.array([0.5, 0.49, 0.9]), np.array([1, 1, 0])) == pytest.approx(1 / 3)
    p = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    assert ev.accuracy(p, np.array([1, 2])) == pytest.approx(0.5)


def test_brier_binary_and_multiclass_hand() -> None:
    assert ev.brier(np.array([0.8, 0.3]), np.array([1, 0])) == pytest.approx(0.065)
    p = np.array([[0.2, 0.5, 0.3]])
    assert ev.brier(p, np.array([1])) == pytest.approx(0.04 + 0.25 + 0.09)


def test_roc_auc_matches_sklearn_and_nan_for_single_class() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=300)
    y = (rng.uniform(size=300) < p).astype(int)
    assert ev.roc_auc(p, y) == pytest.approx(skm.roc_auc_score(y, p))
    assert math.isnan(ev.roc_auc(p, np.ones(300, dtype=int)))
    pm = rng.dirichlet(np.ones(3), size=300)
    assert 0.0 <= ev.roc_auc(pm, rng.integers(0, 3, 300)) <= 1.0


def test_ece_hand_oracle() -> None:
    # top confidences 0.9, 0.9, 0.6, 0.6; right, wrong, right, right; 10 bins:
    # bin (0.8, 0.9]: acc 0.5 vs conf 0.9; bin (0.5, 0.6]: acc 1 vs conf 0.6.
    p = np.array([0.9, 0.1, 0.6, 0.4])
    y = np.array([1, 1, 1, 0])
    assert ev.expected_calibration_error(p, y, n_bins=10) == pytest.approx(0.4)


def test_ece_right_closed_bins_and_confidence_one() -> None:
    # conf 0.5 (bin 0 with 2 bins) and 1.0 (last bin): both correct.
    p = np.array([[0.5, 0.5], [0.0, 1.0]])
    y = np.array([0, 1])
    assert ev.expected_calibration_error(p, y, n_bins=2) == pytest.approx(0.5 * 0.5)


def test_ece_small_for_calibrated_large_for_overconfident() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=50_000) < p).astype(int)
    assert ev.expected_calibration_error(p, y) < 0.01
    sharp = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))
    assert ev.expected_calibration_error(sharp, y) > 0.05


def test_ece_rejects_zero_bins() -> None:
    with pytest.raises(ConfigError):
        ev.expected_calibration_error(np.array([0.5]), np.array([1]), n_bins=0)


def test_error_auroc_hand_and_nan() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    ok = np.array([True, True, False, True])
    assert ev.error_auroc(conf, ok) == pytest.approx(2 / 3)
    assert math.isnan(ev.error_auroc(conf, np.ones(4, dtype=bool)))
    assert math.isnan(ev.error_auroc(conf, np.zeros(4, dtype=bool)))


def test_selective_accuracy_counts_a_tied_group_at_its_mean_accuracy() -> None:
    conf = np.array([0.9, 0.5, 0.5, 0.1, 0.8])
    ok = np.array([True, False, True, False, True])
    # keep ceil(0.6 * 5) = 3 rows: 0.9, 0.8, then one of the two 0.5 rows (half right).
    assert ev.selective_accuracy(conf, ok, coverage=0.6) == pytest.approx(2.5 / 3)
    assert ev.selective_accuracy(conf, ok, coverage=1.0) == pytest.approx(3 / 5)
    # ceil(0.7 * 5) = 4 rows: the whole tied group is kept.
    assert ev.selective_accuracy(conf, ok, coverage=0.7) == pytest.approx(3 / 4)
    # Row order does not matter.
    perm = np.array([3, 2, 0, 4, 1])
    assert ev.selective_accuracy(conf[perm], ok[perm], coverage=0.6) == pytest.approx(2.5 / 3)
    # It is the mean over random tie-breaks.
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(4000):
        order = np.lexsort((rng.uniform(size=5), -conf))
        draws.append(ok[order[:3]].mean())
    assert abs(np.mean(draws) - ev.selective_accuracy(conf, ok, coverage=0.6)) < 0.01
    with pytest.raises(ConfigError):
        ev.selective_accuracy(conf, ok, coverage=0.0)


def test_relative_reduction() -> None:
    assert ev.relative_reduction(0.9, 1.0) == pytest.approx(0.1)
    assert ev.relative_reduction(1.1, 1.0) == pytest.approx(-0.1)
    assert math.isnan(ev.relative_reduction(0.5, 0.0))


def test_registries_complete_and_unknown_name_is_config_error() -> None:
    assert set(ev.METRICS) == set(ev.MetricName)
    assert set(ev.HIGHER_IS_BETTER) == set(ev.MetricName)
    assert set(ev.SELECTIVE_METRICS) == set(ev.SelectiveMetricName)
    assert ev.get_metric("brier") is ev.brier
    assert ev.get_selective_metric("error_auroc") is ev.error_auroc
    with pytest.raises(ConfigError):
        ev.get_metric("f1")
    with pytest.raises(ValueError):
        ev.get_selective_metric("nope")


def test_evaluate_reports_every_metric() -> None:
    out = ev.evaluate(np.array([0.8, 0.3, 0.6]), np.array([1, 0, 0]))
    assert set(out) == {m.value for m in ev.MetricName}
    assert out["accuracy"] == pytest.approx(2 / 3)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(CombinerError):
        ev.log_loss(np.array([0.5, 0.5]), np.array([1]))
    with pytest.raises(CombinerError):
        ev.error_auroc(np.array([0.5, 0.5]), np.array([True]))
