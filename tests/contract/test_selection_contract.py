"""Every registered selector, metric and dynamic selector through the same checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from stream_ensemble.core.selection import (
    METRICS,
    SELECTORS,
    Metric,
    SelectionConstraints,
    SelectionMethod,
    SelectionResult,
    select,
)
from stream_ensemble.core.selection.dynamic import REGION_SELECTORS, RegionMethod, make_region_selector
from stream_ensemble.errors import SelectionError

N, M, C = 60, 6, 3


@pytest.fixture(scope="module")
def heldout():
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N)
    logits = 2.0 * np.eye(C)[y][:, None, :] * rng.uniform(0, 1, (1, M, 1)) + rng.normal(0, 1, (N, M, C))
    P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    X = rng.normal(0, 1, (N, 4)) + y[:, None]
    return X, P, y, rng.uniform(0.1, 1.0, M)


def test_registries_cover_their_enums():
    assert set(SELECTORS) == set(SelectionMethod)
    assert set(METRICS) == set(Metric)
    assert set(REGION_SELECTORS) == set(RegionMethod)


@pytest.mark.parametrize("method", list(SelectionMethod))
@pytest.mark.parametrize("metric", list(Metric))
def test_selector_output_contract(heldout, method, metric):
    _, P, y, costs = heldout
    allowed = np.array([True, True, False, True, True, True])
    # A node limit, not a time limit, so that the determinism check below is meaningful.
    c = SelectionConstraints(budget=2.0, max_members=3, metric=metric.value, node_limit=300, time_limit_s=60.0)
    r = select(P, y, costs=costs, constraints=c, method=method, allowed=allowed)
    assert isinstance(r, SelectionResult)
    assert r.mask.shape == (M,) and r.mask.dtype == bool and r.weights.shape == (M,)
    assert 1 <= r.mask.sum() <= 3 and not r.mask[~allowed].any()
    assert r.weights.sum() == pytest.approx(1.0) and np.all(r.weights[~r.mask] == 0)
    assert r.cost <= 2.0 and r.metric == metric.value and np.isfinite(r.score)
    worse_or_equal = (lambda a, b: a <= b + 1e-12) if METRICS[metric].greater_is_better else (lambda a, b: a >= b - 1e-12)
    assert worse_or_equal(r.score, r.bound)  # the bound is never beaten
    again = select(P, y, costs=costs, constraints=c, method=method, allowed=allowed)
    assert np.array_equal(r.mask, again.mask) and r.selection_id == again.selection_id
    assert pickle.loads(pickle.dumps(r)).selection_id == r.selection_id


@pytest.mark.parametrize("method", list(SelectionMethod))
def test_selector_all_disallowed_raises(heldout, method):
    _, P, y, costs = heldout
    with pytest.raises(SelectionError, match="no member is allowed"):
        select(P, y, costs=costs, method=method, allowed=np.zeros(M, bool))


@pytest.mark.parametrize("name", list(RegionMethod))
def test_region_selector_contract(heldout, name):
    X, P, y, costs = heldout
    params = {"n_regions": 3, "min_region_rows": 5} if name is RegionMethod.REGIONS else {"k": 5}
    est = make_region_selector(name, **params)
    assert clone(est).get_params() == est.get_params()
    allowed = np.array([True, False, True, True, True, True])
    est.fit(X, P, y, costs, allowed=allowed)
    Xq = np.random.default_rng(1).normal(0, 1, (25, 4))
    m = est.masks(Xq)
    assert m.shape == (25, M) and m.dtype == bool and m.any(axis=1).all() and not m[:, 1].any()
    assert np.array_equal(m, pickle.loads(pickle.dumps(est)).masks(Xq))
    down = allowed.copy()
    down[0] = False
    assert not est.masks(Xq, down)[:, [0, 1]].any()
    with pytest.raises(SelectionError):
        est.masks(Xq, np.zeros(M, bool))
    with pytest.raises(SelectionError):
        make_region_selector(name, **params).fit(X, P, y, costs, allowed=np.zeros(M, bool))
