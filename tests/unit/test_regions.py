"""Per-region selection and KNORA-E on small hand-built fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from stream_ensemble.core.selection import SelectionConstraints
from stream_ensemble.core.selection.dynamic import KnoraE, RegionSelector, make_region_selector
from stream_ensemble.errors import ConfigError, SelectionError


def _two_regions(n_per: int = 60, seed: int = 0):
    """Region A (x near -5): member 0 is right, 1 is wrong. Region B (x near +5): the reverse.

    Member 2 is mediocre everywhere, member 3 is a coin flip.
    """
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(-5, 0.5, (n_per, 2)), rng.normal(5, 0.5, (n_per, 2))])
    y = rng.integers(0, 2, 2 * n_per)
    in_a = np.arange(2 * n_per) < n_per
    right = np.where(y == 1, 0.9, 0.1)
    p1 = np.stack([
        np.where(in_a, right, 1 - right),
        np.where(in_a, 1 - right, right),
        np.where(y == 1, 0.6, 0.4),
        np.full(2 * n_per, 0.5),
    ], axis=1)
    P = np.stack([1 - p1, p1], axis=2)
    return X, P, y


def test_regions_pick_the_locally_competent_member():
    X, P, y = _two_regions()
    sel = RegionSelector(n_regions=2, min_region_rows=10, constraints=SelectionConstraints(max_members=1)).fit(
        X, P, y, costs=np.ones(4)
    )
    ra, rb = sel.assign(np.array([[-5.0, -5.0], [5.0, 5.0]]))
    assert ra != rb
    assert sel.region_masks_[ra].tolist() == [True, False, False, False]
    assert sel.region_masks_[rb].tolist() == [False, True, False, False]
    assert sel.competence_.shape == (2, 4)
    assert sel.competence_[ra, 0] == 1.0 and sel.competence_[ra, 1] == 0.0


def test_masks_respect_allowed_and_reselect_memoised():
    X, P, y = _two_regions()
    sel = RegionSelector(n_regions=2, min_region_rows=10, constraints=SelectionConstraints(max_members=2)).fit(
        X, P, y, costs=np.ones(4)
    )
    allowed = np.array([False, True, True, True])
    Xq = np.array([[-5.0, -5.0], [5.0, 5.0], [-4.0, -6.0]])
    m = sel.masks(Xq, allowed)
    assert m.shape == (3, 4) and not m[:, 0].any() and m.any(axis=1).all()
    assert sel.region_masks(allowed) is sel.region_masks(allowed.copy())
    # Region A lost member 0: the best it can do now is the mediocre member 2.
    ra = sel.assign(Xq[:1])[0]
    assert sel.region_masks(allowed)[ra, 2]


def test_fit_time_allowed_is_respected_everywhere():
    X, P, y = _two_regions()
    allowed = np.array([True, False, True, True])
    sel = RegionSelector(n_regions=3, min_region_rows=10).fit(X, P, y, costs=np.ones(4), allowed=allowed)
    assert not sel.region_masks_[:, 1].any()
    assert not sel.masks(np.random.default_rng(1).normal(0, 5, (20, 2)))[:, 1].any()


def test_small_regions_fall_back_to_global():
    X, P, y = _two_regions(n_per=15)
    sel = RegionSelector(n_regions=4, min_region_rows=1000).fit(X, P, y, costs=np.ones(4))
    assert sel.fallback_.all()
    assert (sel.region_masks_ == sel.global_.mask).all()


def test_assign_deterministic_and_shapes():
    X, P, y = _two_regions()
    a = RegionSelector(n_regions=4, random_state=3).fit(X, P, y, costs=np.ones(4))
    b = RegionSelector(n_regions=4, random_state=3).fit(X, P, y, costs=np.ones(4))
    Xq = np.random.default_rng(2).normal(0, 6, (50, 2))
    assert np.array_equal(a.assign(Xq), b.assign(Xq))
    assert np.array_equal(a.assign(Xq), a.assign(Xq.copy()))
    assert a.masks(Xq).shape == (50, 4) and a.masks(Xq).dtype == bool
    # Nearest centroid, checked against an explicit distance computation.
    d = ((Xq[:, None, :] - a.centroids_[None]) ** 2).sum(axis=2)
    assert np.array_equal(a.assign(Xq), d.argmin(axis=1))
    with pytest.raises(SelectionError):
        a.assign(np.zeros((2, 3)))


def test_not_fitted_and_bad_params():
    with pytest.raises(NotFittedError):
        RegionSelector().assign(np.zeros((1, 2)))
    with pytest.raises(NotFittedError):
        KnoraE().masks(np.zeros((1, 2)))
    X, P, y = _two_regions()
    with pytest.raises(ConfigError):
        RegionSelector(n_regions=0).fit(X, P, y, costs=np.ones(4))
    with pytest.raises(ConfigError):
        make_region_selector("meta_des")


def test_knora_e_hand_oracle():
    # 1-D held-out rows at 0,1,2,10,11; correctness of 3 members per row.
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    correct = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    y = np.ones(5, dtype=np.int64)
    p1 = np.where(correct, 0.8, 0.2)
    P = np.stack([1 - p1, p1], axis=2)
    ke = KnoraE(k=3).fit(X, P, y)
    got = ke.masks(np.array([[0.1], [10.9], [10.2]]))
    # x=0.1: neighbours 0,1,2 -> only member 0 right on all three.
    # x=10.9: neighbours 11,10,2 -> nobody right on 11 -> all members.
    # x=10.2: neighbours 10,11,2 -> on {10}: member 1; on {10,11}: nobody -> k shrinks to 1.
    assert got.tolist() == [[True, False, False], [True, True, True], [False, True, False]]
    # Member 0 down, x=0.1: member 1 is wrong on row 1 and member 2 on row 0, so k shrinks to 1.
    got = ke.masks(np.array([[0.1]]), allowed=np.array([False, True, True]))
    assert got.tolist() == [[False, True, False]]


def test_knora_e_respects_fit_allowed_and_all_disallowed_raises():
    X, P, y = _two_regions()
    ke = make_region_selector("knora_e", k=5).fit(X, P, y, allowed=np.array([True, True, False, True]))
    m = ke.masks(np.random.default_rng(0).normal(0, 5, (30, 2)))
    assert m.shape == (30, 4) and not m[:, 2].any()
    with pytest.raises(SelectionError):
        ke.masks(X[:3], allowed=np.array([False, False, True, False]))
