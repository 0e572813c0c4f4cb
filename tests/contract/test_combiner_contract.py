"""Shared checks run on every registered combiner (river's yield_checks, sklearn's check_estimator).

A new entry in ``COMBINERS`` is picked up automatically; ``binary_only`` and ``stateless``
class attributes select the checks that apply.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from stream_ensemble.core.combiners import COMBINERS, Combiner, CombinerName, make_combiner
from stream_ensemble.errors import CombinerError

NAMES = list(COMBINERS)
SPACES = {"probability", "log_odds", "vote_fraction", "rank"}


def synthetic(seed: int, n: int = 120, m: int = 5, c: int = 2,
              p_present: float = 0.75) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members of varying quality on a fixed task; absent entries are NaN; rows 0-2 empty."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c  # every class present, balanced
    rng.shuffle(y)
    quality = np.linspace(0.2, 2.0, m)
    onehot = np.eye(c)[y]
    logits = quality[None, :, None] * onehot[:, None, :] + rng.normal(0, 1, (n, m, c))
    P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    mask = rng.random((n, m)) < p_present
    mask[:3] = False
    mask[3:6] = True
    P[~mask] = np.nan
    return P, y, mask


FIT_P, FIT_Y, FIT_MASK = synthetic(1)
FIT_P_FULL = np.nan_to_num(FIT_P, nan=0.5)  # every member present during fit
TEST_P, TEST_Y, TEST_MASK = synthetic(2, n=80)


def fitted(name: CombinerName, mask: np.ndarray | None = FIT_MASK, **params: object) -> Combiner:
    P = FIT_P if mask is not None else FIT_P_FULL
    return make_combiner(name, **params).fit(P, FIT_Y, mask)


@pytest.fixture(params=NAMES, ids=[n.value for n in NAMES])
def name(request: pytest.FixtureRequest) -> CombinerName:
    return request.param  # type: ignore[no-any-return]


def test_registry_is_complete_and_consistent() -> None:
    assert set(COMBINERS) == set(CombinerName)
    for key, cls in COMBINERS.items():
        assert cls.name is key
        assert cls.space in SPACES


def test_output_shape_and_rows_sum_to_one(name: CombinerName) -> None:
    out = fitted(name).predict_proba(TEST_P, TEST_MASK)
    assert out.shape == (TEST_P.shape[0], 2)
    assert np.all(np.isfinite(out)) and np.all(out >= 0) and np.all(out <= 1)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)


def test_beats_the_prior_on_informative_members(name: CombinerName) -> None:
    out = fitted(name).predict_proba(TEST_P, TEST_MASK)
    rows = TEST_MASK.any(axis=1)
    accuracy = np.mean(out[rows].argmax(axis=1) == TEST_Y[rows])
    assert accuracy > 0.7


def test_all_false_mask_rows_get_fitted_prior(name: CombinerName) -> None:
    y = FIT_Y.copy()
    y[: len(y) // 4] = 1  # skew the prior away from uniform
    comb = make_combiner(name).fit(FIT_P, y, FIT_MASK)
    prior = np.bincount(y, minlength=2) / len(y)
    mask = TEST_MASK.copy()
    mask[10:13] = False
    out = comb.predict_proba(TEST_P, mask)
    np.testing.assert_allclose(out[~mask.any(axis=1)], np.tile(prior, (6, 1)), atol=1e-12)
    everything_missing = comb.predict_proba(np.full((4, 5, 2), np.nan), np.zeros((4, 5), bool))
    np.testing.assert_allclose(everything_missing, np.tile(prior, (4, 1)), atol=1e-12)


def test_unfitted_stateless_rules_use_uniform_others_refuse(name: CombinerName) -> None:
    comb = make_combiner(name)
    if COMBINERS[name].stateless:
        out = comb.predict_proba(TEST_P, TEST_MASK)
        np.testing.assert_allclose(out[:3], 0.5)
    else:
        with pytest.raises(NotFittedError):
            comb.predict_proba(TEST_P, TEST_MASK)


def test_mask_none_means_all_present(name: CombinerName) -> None:
    comb = fitted(name)
    full = np.nan_to_num(TEST_P, nan=0.3)
    np.testing.assert_array_equal(comb.predict_proba(full),
                                  comb.predict_proba(full, np.ones(full.shape[:2], bool)))


def test_absent_entries_are_ignored_whatever_they_hold(name: CombinerName) -> None:
    comb = fitted(name)
    garbage = TEST_P.copy()
    garbage[~TEST_MASK] = 0.123
    np.testing.assert_array_equal(comb.predict_proba(TEST_P, TEST_MASK),
                                  comb.predict_proba(garbage, TEST_MASK))


def test_model_order_invariance(name: CombinerName) -> None:
    """Permuting models in P, mask and explicit weights (and in the fit data) is a no-op."""
    perm = np.array([3, 0, 4, 2, 1])
    comb = fitted(name)
    permuted = make_combiner(name).fit(FIT_P[:, perm], FIT_Y, FIT_MASK[:, perm])
    np.testing.assert_allclose(permuted.predict_proba(TEST_P[:, perm], TEST_MASK[:, perm]),
                               comb.predict_proba(TEST_P, TEST_MASK), atol=1e-6)


@pytest.mark.parametrize("name", [CombinerName.WEIGHTED, CombinerName.GEOMETRIC_MEAN])
def test_model_order_invariance_with_explicit_weights(name: CombinerName) -> None:
    perm = np.array([3, 0, 4, 2, 1])
    weights = np.array([0.5, 1.0, 0.0, 2.0, 3.0])
    comb = make_combiner(name, weights=weights)
    permuted = make_combiner(name, weights=weights[perm])
    np.testing.assert_allclose(permuted.predict_proba(TEST_P[:, perm], TEST_MASK[:, perm]),
                               comb.predict_proba(TEST_P, TEST_MASK), atol=1e-12)


def test_pickle_round_trip_gives_identical_output(name: CombinerName) -> None:
    comb = fitted(name)
    restored = pickle.loads(pickle.dumps(comb))
    np.testing.assert_array_equal(restored.predict_proba(TEST_P, TEST_MASK),
                                  comb.predict_proba(TEST_P, TEST_MASK))


def test_clone_is_unfitted_with_same_params_and_refits_identically(name: CombinerName) -> None:
    comb = fitted(name)
    twin = clone(comb)
    assert twin.get_params() == comb.get_params()
    assert not any(k.endswith("_") and not k.startswith("__") for k in vars(twin))
    twin.fit(FIT_P, FIT_Y, FIT_MASK)
    np.testing.assert_array_equal(twin.predict_proba(TEST_P, TEST_MASK),
                                  comb.predict_proba(TEST_P, TEST_MASK))


def test_fit_returns_self_and_does_not_touch_inputs(name: CombinerName) -> None:
    P, y, mask = FIT_P.copy(), FIT_Y.copy(), FIT_MASK.copy()
    comb = make_combiner(name)
    assert comb.fit(P, y, mask) is comb
    np.testing.assert_array_equal(P, FIT_P)
    np.testing.assert_array_equal(mask, FIT_MASK)
    full = np.nan_to_num(TEST_P, nan=0.2)
    before = full.copy()
    comb.predict_proba(full)
    comb.contributions(full)
    np.testing.assert_array_equal(full, before)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_contributions_reproduce_predict_proba(name: CombinerName, seed: int) -> None:
    rng = np.random.default_rng(seed)
    comb = fitted(name)
    P, _, _ = synthetic(seed, n=60)
    mask = rng.random(P.shape[:2]) < rng.uniform(0.2, 0.9)
    mask[:2] = False
    P = np.nan_to_num(P, nan=0.5)
    P[~mask] = np.nan
    con = comb.contributions(P, mask)
    assert con.space == comb.space
    assert con.baseline.shape == (60,) and con.values.shape == (60, 5)
    assert np.all(con.values[~mask] == 0.0)
    total = con.baseline + con.values.sum(axis=1)
    np.testing.assert_allclose(con.to_probability(total), comb.predict_proba(P, mask)[:, 1],
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(con.probability(), comb.predict_proba(P, mask)[:, 1],
                               rtol=0, atol=1e-9)


def test_effective_weights_are_normalised_over_present(name: CombinerName) -> None:
    w = fitted(name).effective_weights(TEST_MASK)
    assert w.shape == TEST_MASK.shape
    assert np.all(w >= 0) and np.all(w[~TEST_MASK] == 0)
    sums = w.sum(axis=1)
    assert np.all(np.isclose(sums, 1.0) | (sums == 0.0))
    assert np.all(sums[~TEST_MASK.any(axis=1)] == 0.0)


def test_deterministic(name: CombinerName) -> None:
    a = fitted(name).predict_proba(TEST_P, TEST_MASK)
    b = fitted(name).predict_proba(TEST_P, TEST_MASK)
    np.testing.assert_array_equal(a, b)


def test_nan_for_present_member_raises(name: CombinerName) -> None:
    comb = fitted(name)
    P = TEST_P.copy()
    P[5, 1, 1] = np.nan
    mask = TEST_MASK.copy()
    mask[5, 1] = True
    with pytest.raises(CombinerError, match="NaN"):
        comb.predict_proba(P, mask)
    with pytest.raises(CombinerError, match="NaN"):
        make_combiner(name).fit(P, TEST_Y, mask)


def test_shape_mismatches_raise(name: CombinerName) -> None:
    comb = fitted(name)
    with pytest.raises(CombinerError):
        comb.predict_proba(TEST_P[:, :4], TEST_MASK[:, :4])  # fit on 5 models
    with pytest.raises(CombinerError):
        comb.predict_proba(TEST_P, TEST_MASK[:-1])
    with pytest.raises(CombinerError):
        comb.predict_proba(TEST_P[:, :, 1], TEST_MASK)
    with pytest.raises(CombinerError):
        comb.predict_proba(TEST_P, TEST_MASK.astype(int))
    with pytest.raises(CombinerError):
        make_combiner(name).fit(FIT_P, FIT_Y[:-1], FIT_MASK)
    with pytest.raises(CombinerError):
        make_combiner(name).fit(FIT_P, FIT_Y + 5, FIT_MASK)


def test_multiclass_supported_or_refused_clearly(name: CombinerName) -> None:
    P, y, mask = synthetic(7, c=3)
    Pt, yt, mt = synthetic(8, n=60, c=3)
    comb = make_combiner(name)
    if COMBINERS[name].binary_only:
        with pytest.raises(CombinerError, match="binary"):
            comb.fit(P, y, mask)
        return
    out = comb.fit(P, y, mask).predict_proba(Pt, mt)
    assert out.shape == (60, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(out[:3], np.tile(np.bincount(y) / len(y), (3, 1)))
    with pytest.raises(CombinerError, match="binary"):
        comb.contributions(Pt, mt)


STATELESS = [n for n in NAMES if COMBINERS[n].stateless]


@settings(max_examples=40, deadline=None)
@given(p1=arrays(np.float64, (7, 4), elements=st.floats(0.0, 1.0)),
       mask=arrays(np.bool_, (7, 4)),
       which=st.sampled_from(STATELESS))
def test_stateless_rules_on_arbitrary_inputs(p1: np.ndarray, mask: np.ndarray,
                                             which: CombinerName) -> None:
    P = np.stack([1.0 - p1, p1], axis=2)
    P[~mask] = np.nan
    comb = make_combiner(which)
    out = comb.predict_proba(P, mask)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(out[~mask.any(axis=1)] == 0.5)
    np.testing.assert_allclose(comb.contributions(P, mask).probability(), out[:, 1], atol=1e-9)


def test_fit_on_full_mask_then_predict_with_missing_members(name: CombinerName) -> None:
    comb = fitted(name, mask=None)
    out = comb.predict_proba(TEST_P, TEST_MASK)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
