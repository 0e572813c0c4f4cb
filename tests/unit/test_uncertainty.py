"""Uncertainty decomposition and confidence measures on hand-computed oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_ensemble.core.confidence.uncertainty import (
    CONFIDENCE_MEASURES,
    DEFAULT_CONFIDENCE,
    ConfidenceName,
    confidence,
    entropy,
    uncertainty,
)
from stream_ensemble.core.evaluation import error_auroc
from stream_ensemble.errors import CombinerError, ConfigError


def _h(*p: float) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def _binary(p1: np.ndarray) -> np.ndarray:
    """(n, m) positive-class probabilities -> (n, m, 2)."""
    return np.stack([1 - p1, p1], axis=-1)


def test_two_member_hand_oracle() -> None:
    P = _binary(np.array([[0.8, 0.4]]))
    mask = np.ones((1, 2), dtype=bool)
    u = uncertainty(P, mask, np.ones((1, 2)), np.array([[0.4, 0.6]]))
    assert u.member_std[0] == pytest.approx(0.2)
    assert u.total_entropy[0] == pytest.approx(_h(0.6, 0.4))
    assert u.aleatoric[0] == pytest.approx(0.5 * (_h(0.8, 0.2) + _h(0.4, 0.6)))
    assert u.epistemic[0] == pytest.approx(_h(0.6, 0.4) - 0.5 * (_h(0.8, 0.2) + _h(0.4, 0.6)))
    assert u.agreement[0] == pytest.approx(0.5)
    assert u.total_entropy_norm[0] == pytest.approx(_h(0.6, 0.4) / math.log(2))
    assert u.n_present.tolist() == [2]


def test_weights_renormalised_over_present_members_and_nan_ignored() -> None:
    # member 2 absent (NaN); weights 1 and 3 on the present ones -> 0.25 / 0.75.
    P = _binary(np.array([[0.9, 0.5, np.nan]]))
    mask = np.array([[True, True, False]])
    u = uncertainty(P, mask, np.array([[1.0, 3.0, 100.0]]), np.array([[0.4, 0.6]]))
    mean = 0.25 * 0.9 + 0.75 * 0.5
    assert u.member_std[0] == pytest.approx(math.sqrt(0.25 * (0.9 - mean) ** 2 + 0.75 * (0.5 - mean) ** 2))
    assert u.total_entropy[0] == pytest.approx(_h(mean, 1 - mean))
    assert u.aleatoric[0] == pytest.approx(0.25 * _h(0.9, 0.1) + 0.75 * _h(0.5, 0.5))
    # argmax of [0.5, 0.5] is class 0, against decision 1.
    assert u.agreement[0] == pytest.approx(0.5)


def test_single_member_and_all_false_rows() -> None:
    P = _binary(np.array([[0.7, np.nan], [np.nan, np.nan]]))
    mask = np.array([[True, False], [False, False]])
    final = np.array([[0.3, 0.7], [0.5, 0.5]])
    u = uncertainty(P, mask, np.full((2, 2), 0.5), final)
    for field in ("member_std", "total_entropy", "aleatoric", "epistemic", "agreement"):
        assert np.all(np.isfinite(getattr(u, field))), field
    assert u.member_std.tolist() == [0.0, 0.0]
    assert u.epistemic.tolist() == [0.0, 0.0]
    assert u.agreement.tolist() == [1.0, 0.0]
    assert u.total_entropy[1] == pytest.approx(math.log(2))
    assert u.aleatoric[1] == pytest.approx(math.log(2))


def test_zero_weights_fall_back_to_uniform_over_present() -> None:
    P = _binary(np.array([[0.8, 0.4]]))
    u = uncertainty(P, np.ones((1, 2), dtype=bool), np.zeros((1, 2)), np.array([[0.4, 0.6]]))
    assert u.member_std[0] == pytest.approx(0.2)


def test_decomposition_invariants_on_random_batches() -> None:
    rng = np.random.default_rng(0)
    n, m, c = 500, 6, 3
    P = rng.dirichlet(np.ones(c) * 0.7, size=(n, m))
    mask = rng.uniform(size=(n, m)) < 0.6
    P[~mask] = np.nan
    w = rng.uniform(size=(n, m))
    final = rng.dirichlet(np.ones(c), size=n)
    u = uncertainty(P, mask, w, final)
    assert np.all(u.epistemic >= 0)
    has = mask.any(axis=1)
    np.testing.assert_allclose((u.aleatoric + u.epistemic)[has], u.total_entropy[has], atol=1e-12)
    for arr in (u.total_entropy_norm, u.aleatoric_norm, u.epistemic_norm, u.agreement):
        assert np.all((arr >= 0) & (arr <= 1 + 1e-12))
    assert np.all((u.member_std >= 0) & (u.member_std <= 0.5))


def test_multiclass_std_uses_decided_class() -> None:
    P = np.array([[[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]]])
    u = uncertainty(P, np.ones((1, 2), dtype=bool), np.ones((1, 2)), np.array([[0.2, 0.2, 0.6]]))
    assert u.member_std[0] == pytest.approx(0.2)  # class 2: 0.1 and 0.5
    assert u.agreement[0] == pytest.approx(0.5)


def test_entropy_zero_log_zero() -> None:
    np.testing.assert_allclose(entropy(np.array([[1.0, 0.0], [0.5, 0.5]])), [0.0, math.log(2)])


def test_bad_shapes_and_weights() -> None:
    P = _binary(np.array([[0.8, 0.4]]))
    with pytest.raises(CombinerError):
        uncertainty(P, np.ones((1, 3), dtype=bool), np.ones((1, 2)), np.array([[0.4, 0.6]]))
    with pytest.raises(CombinerError):
        uncertainty(P, np.ones((1, 2), dtype=bool), -np.ones((1, 2)), np.array([[0.4, 0.6]]))


def _batch() -> tuple[np.ndarray, object]:
    P = _binary(np.array([[0.8, 0.4], [0.9, 0.95]]))
    final = np.array([[0.4, 0.6], [0.1, 0.9]])
    return final, uncertainty(P, np.ones((2, 2), dtype=bool), np.ones((2, 2)), final)


def test_confidence_measures_hand_values() -> None:
    final, u = _batch()
    assert confidence(final, u, "top_proba").tolist() == pytest.approx([0.6, 0.9])
    assert confidence(final, u, "margin").tolist() == pytest.approx([0.2, 0.8])
    assert confidence(final, u, "entropy")[0] == pytest.approx(1 - _h(0.6, 0.4) / math.log(2))
    assert confidence(final, u, "top_x_agreement").tolist() == pytest.approx([0.3, 0.9])
    assert confidence(final, u, "top_x_std")[0] == pytest.approx(0.6 * (1 - 0.4))
    epi = u.epistemic_norm  # type: ignore[attr-defined]
    assert confidence(final, u, "top_x_epistemic").tolist() == pytest.approx(
        (np.array([0.6, 0.9]) * (1 - epi)).tolist()
    )


def test_every_measure_in_unit_interval_and_registry_complete() -> None:
    rng = np.random.default_rng(1)
    n, m, c = 300, 5, 3
    P = rng.dirichlet(np.ones(c), size=(n, m))
    mask = rng.uniform(size=(n, m)) < 0.7
    final = rng.dirichlet(np.ones(c), size=n)
    u = uncertainty(P, mask, np.ones((n, m)), final)
    assert set(CONFIDENCE_MEASURES) == set(ConfidenceName)
    assert DEFAULT_CONFIDENCE in CONFIDENCE_MEASURES
    for name in ConfidenceName:
        out = confidence(final, u, name)
        assert out.shape == (n,) and np.all((out >= 0) & (out <= 1)), name


def test_binary_top_entropy_margin_rank_errors_identically() -> None:
    rng = np.random.default_rng(2)
    n, m = 2000, 4
    p1 = rng.uniform(size=(n, m))
    P = _binary(p1)
    final = _binary(p1.mean(axis=1))
    y = (rng.uniform(size=n) < final[:, 1]).astype(int)
    correct = final.argmax(axis=1) == y
    u = uncertainty(P, np.ones((n, m), dtype=bool), np.ones((n, m)), final)
    scores = {name: error_auroc(confidence(final, u, name), correct) for name in ConfidenceName}
    assert scores["top_proba"] == pytest.approx(scores["entropy"])
    assert scores["top_proba"] == pytest.approx(scores["margin"])
    assert scores["top_proba"] != pytest.approx(scores["top_x_agreement"])


def test_unknown_confidence_is_config_error() -> None:
    final, u = _batch()
    with pytest.raises(ConfigError):
        confidence(final, u, "vibes")


def test_members_absent_from_every_row_change_nothing() -> None:
    """A 120-member pool running 4: the uncertainty equals that of the 4 alone (to 1e-12)."""
    rng = np.random.default_rng(3)
    n, k = 50, 4
    p1 = rng.uniform(0.01, 0.99, (n, k))
    P = np.stack([1 - p1, p1], axis=2)
    mask = rng.uniform(size=(n, k)) < 0.8
    w = rng.uniform(0.1, 1.0, (n, k))
    final = np.column_stack([1 - p1.mean(axis=1), p1.mean(axis=1)])
    small = uncertainty(P, mask, w, final)
    big_P = np.full((n, 120, 2), np.nan)
    cols = np.array([3, 40, 41, 119])
    big_P[:, cols] = P
    big_mask = np.zeros((n, 120), dtype=bool)
    big_mask[:, cols] = mask
    big_w = np.zeros((n, 120))
    big_w[:, cols] = w
    big = uncertainty(big_P, big_mask, big_w, final)
    for name in ("member_std", "total_entropy", "aleatoric", "epistemic", "agreement"):
        np.testing.assert_allclose(getattr(big, name), getattr(small, name), rtol=0, atol=1e-12)
    assert big.n_present.tolist() == small.n_present.tolist()
