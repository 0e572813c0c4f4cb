"""Branch-and-bound, Caruana and the selection cache against brute force and hand oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_ensemble.core.selection import (
    SelectionCache,
    SelectionConstraints,
    branch_and_bound,
    caruana,
    diversity,
    diversity_matrix,
    ensemble_score,
    select,
)
from stream_ensemble.errors import ConfigError, SelectionError


def _pool(seed: int, n: int, m: int, n_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    # Members of mixed quality: a label-informed signal blurred by member-specific noise.
    signal = np.eye(n_classes)[y][:, None, :] * rng.uniform(0.0, 3.0, (1, m, 1))
    logits = signal + rng.normal(0.0, 1.0, (n, m, n_classes))
    P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    return P, y


def _brute_force(P, y, costs, budget, max_members, min_div, metric, allowed=None):
    """Best natural score over every feasible subset (lower-is-better orientation returned)."""
    n, m, _ = P.shape
    allowed = np.ones(m, bool) if allowed is None else allowed
    sign = -1.0 if metric in ("accuracy", "roc_auc") else 1.0
    best = np.inf
    for k in range(1, max_members + 1):
        for S in itertools.combinations(np.flatnonzero(allowed), k):
            S = list(S)
            if costs[S].sum() > budget:
                continue
            mask = np.zeros(m, bool)
            mask[S] = True
            if diversity(P, y, mask) < min_div:
                continue
            best = min(best, sign * ensemble_score(P, y, mask.astype(float), metric))
    return sign * best if np.isfinite(best) else None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(20, 80),
    m=st.integers(2, 12),
    n_classes=st.sampled_from([2, 2, 3]),
    budget_frac=st.floats(0.1, 1.0),
    mm_frac=st.floats(0.0, 1.0),
    metric=st.sampled_from(["log_loss", "accuracy"]),
)
def test_bnb_matches_brute_force(seed, n, m, n_classes, budget_frac, mm_frac, metric):
    P, y = _pool(seed, n, m, n_classes)
    costs = np.random.default_rng(seed + 1).uniform(0.0, 1.0, m)
    budget = max(float(costs.min()), budget_frac * float(costs.sum()))
    max_members = 1 + int(mm_frac * (m - 1))
    want = _brute_force(P, y, costs, budget, max_members, 0.0, metric)
    r = branch_and_bound(P, y, costs=costs, budget=budget, max_members=max_members, metric=metric)
    assert r.proven_optimal
    assert r.score == pytest.approx(want, abs=1e-9)
    assert r.bound == pytest.approx(r.score, abs=1e-12)
    assert r.cost <= budget and 1 <= r.mask.sum() <= max_members


@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
def test_bnb_matches_brute_force_16_models(metric):
    P, y = _pool(7, 60, 16)
    costs = np.random.default_rng(3).uniform(0.1, 1.0, 16)
    budget = 0.4 * costs.sum()
    want = _brute_force(P, y, costs, budget, 16, 0.0, metric)
    r = branch_and_bound(P, y, costs=costs, budget=budget, metric=metric)
    assert r.proven_optimal and r.score == pytest.approx(want, abs=1e-9)


def test_bnb_respects_diversity_floor_like_brute_force():
    P, y = _pool(11, 50, 8)
    costs = np.ones(8)
    want = _brute_force(P, y, costs, np.inf, 8, 0.3, "log_loss")
    r = branch_and_bound(P, y, costs=costs, min_diversity=0.3)
    assert r.diversity >= 0.3 and r.score == pytest.approx(want, abs=1e-9)


def test_subset_costing_exactly_the_budget_is_feasible():
    # Regression (found by hypothesis): budget == sum of all costs, float rounding in the
    # incremental sums used to cut off the full set, the optimum here.
    P, y = _pool(0, 31, 2, 2)
    costs = np.random.default_rng(1).uniform(0.0, 1.0, 2)
    r = branch_and_bound(P, y, costs=costs, budget=float(costs.sum()), max_members=2, metric="accuracy")
    assert r.mask.all() and r.score == 1.0


def test_stopped_search_bound_never_exceeds_optimum():
    P, y = _pool(5, 60, 12)
    costs = np.ones(12)
    opt = _brute_force(P, y, costs, np.inf, 12, 0.0, "log_loss")
    r = branch_and_bound(P, y, costs=costs, node_limit=5)
    assert not r.proven_optimal and r.nodes == 5
    assert r.bound <= opt + 1e-12 <= r.score + 1e-12


def test_hand_oracle_log_loss_and_accuracy():
    # Row 0 (y=1): members give p1 = 0.9, 0.4, 0.7; row 1 (y=0): p0 = 0.8, 0.7, 0.4.
    P = np.array([[[0.1, 0.9], [0.6, 0.4], [0.3, 0.7]], [[0.8, 0.2], [0.7, 0.3], [0.4, 0.6]]])
    y = np.array([1, 0])
    r = branch_and_bound(P, y, costs=np.ones(3))
    assert r.mask.tolist() == [True, False, False]
    assert r.score == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)
    # Member 0 is too expensive: {1, 2} averages to p_true = 0.55 on both rows.
    r = branch_and_bound(P, y, costs=np.array([5.0, 1.0, 1.0]), budget=2.0)
    assert r.mask.tolist() == [False, True, True] and r.score == pytest.approx(-np.log(0.55))
    r = branch_and_bound(P, y, costs=np.array([5.0, 1.0, 1.0]), budget=2.0, metric="accuracy")
    assert r.score == 1.0 and r.mask.sum() == 2


def test_diversity_hand_oracle():
    # Decisions: m0 right, right; m1 wrong, right; m2 wrong, wrong -> dis = 1/2, 1, 1/2.
    P = np.array([[[0.1, 0.9], [0.6, 0.4], [0.7, 0.3]], [[0.8, 0.2], [0.9, 0.1], [0.4, 0.6]]])
    y = np.array([1, 0])
    D = diversity_matrix(P, y)
    np.testing.assert_allclose(D, [[0, 0.5, 1], [0.5, 0, 0.5], [1, 0.5, 0]])
    assert diversity(P, y, np.array([True, True, True])) == pytest.approx(2.0 / 3.0)
    assert diversity(P, y, np.array([True, False, False])) == 0.0


def test_constraints_respected():
    P, y = _pool(2, 60, 10)
    costs = np.linspace(0.1, 1.0, 10)
    allowed = np.ones(10, bool)
    allowed[[0, 3]] = False
    r = branch_and_bound(P, y, costs=costs, budget=1.2, max_members=3, min_diversity=0.05, allowed=allowed)
    assert r.cost <= 1.2 and r.mask.sum() <= 3 and r.diversity >= 0.05
    assert not r.mask[~allowed].any()
    assert r.weights.sum() == pytest.approx(1.0) and np.all(r.weights[~r.mask] == 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"allowed": np.zeros(4, bool)}, "no member is allowed"),
        ({"budget": 0.05}, "budget"),
        ({"min_diversity": 1.0}, "min_diversity"),
    ],
)
def test_infeasible_names_the_constraint(kwargs, message):
    P, y = _pool(1, 30, 4)
    with pytest.raises(SelectionError, match=message):
        branch_and_bound(P, y, costs=np.full(4, 0.1), **kwargs)


def test_determinism_and_stable_id():
    P, y = _pool(9, 70, 10)
    a = branch_and_bound(P, y, costs=np.ones(10), max_members=4)
    b = branch_and_bound(P, y, costs=np.ones(10), max_members=4)
    assert np.array_equal(a.mask, b.mask) and a.selection_id == b.selection_id
    c = branch_and_bound(P, y, costs=np.ones(10), max_members=3)
    assert c.selection_id != a.selection_id  # constraints are part of the id


def test_caruana_beats_best_single_and_matches_naive_reference():
    P, y = _pool(4, 200, 10)
    singles = [ensemble_score(P, y, np.eye(10)[j]) for j in range(10)]
    r = caruana(P, y, n_iterations=30)
    assert r.score < min(singles) - 1e-3 and r.mask.sum() >= 2
    # Naive reference: best single first, then 30 greedy additions with replacement,
    # keep the best prefix (first one on ties).
    picks = [int(np.argmin(singles))]
    trail = [min(singles)]
    for _ in range(30):
        losses = [ensemble_score(P, y, np.bincount(picks + [j], minlength=10).astype(float)) for j in range(10)]
        picks.append(int(np.argmin(losses)))
        trail.append(min(losses))
    best = picks[: int(np.argmin(trail)) + 1]
    want = np.bincount(best, minlength=10) / len(best)
    np.testing.assert_allclose(r.weights, want)
    assert r.score == pytest.approx(min(trail))


def test_caruana_respects_budget_allowed_and_max_members():
    P, y = _pool(4, 100, 10)
    costs = np.linspace(0.1, 1.0, 10)
    allowed = np.arange(10) % 2 == 0
    r = caruana(P, y, costs=costs, budget=1.0, allowed=allowed, max_members=2)
    assert r.cost <= 1.0 and r.mask.sum() <= 2 and not r.mask[~allowed].any()


def test_weighted_incumbent_is_kept_unless_beaten():
    P, y = _pool(8, 100, 8)
    car = caruana(P, y, n_iterations=40)
    r = branch_and_bound(P, y, costs=np.ones(8), incumbent=car.weights)
    uniform = branch_and_bound(P, y, costs=np.ones(8))
    assert r.score <= min(car.score, uniform.score) + 1e-12
    if r.from_incumbent:
        np.testing.assert_allclose(r.weights, car.weights)
    else:
        assert r.score < car.score


def test_select_registry_and_constraints():
    P, y = _pool(3, 60, 6)
    c = SelectionConstraints(max_members=2)
    assert select(P, y, costs=np.ones(6), constraints=c).mask.sum() <= 2
    assert select(P, y, costs=np.ones(6), constraints=c, method="caruana").mask.sum() <= 2
    with pytest.raises(ConfigError):
        select(P, y, costs=np.ones(6), method="simulated_annealing")
    with pytest.raises(ConfigError):
        branch_and_bound(P, y, costs=np.ones(6), metric="f1")
    for bad in ({"budget": -1.0}, {"max_members": 0}, {"min_diversity": 1.5}, {"metric": "nope"},
                {"time_limit_s": 0.0}):
        with pytest.raises(ConfigError):
            SelectionConstraints(**bad)


def test_invalid_inputs_raise_selection_error():
    P, y = _pool(3, 20, 3)
    with pytest.raises(SelectionError):
        branch_and_bound(P[:, :, :1], y, costs=np.ones(3))
    with pytest.raises(SelectionError):
        branch_and_bound(np.where(P > 0.9, np.nan, P), y, costs=np.ones(3))
    with pytest.raises(SelectionError):
        branch_and_bound(P, y, costs=-np.ones(3))


def test_cache_memoises_and_drops_down_member():
    P, y = _pool(6, 80, 10)
    cache = SelectionCache.from_validation(P, y, np.ones(10), SelectionConstraints(max_members=4, time_limit_s=0.5))
    full = cache.get(np.ones(10, bool))
    assert cache.get(np.ones(10, bool)) is full
    down = np.ones(10, bool)
    down[int(np.argmax(full.weights))] = False
    r = cache.get(down)
    assert not r.mask[~down].any() and len(cache) == 2
    assert cache.get(down.copy()) is r


def test_cache_calls_select_fn_once_per_health_set():
    calls: list[bytes] = []
    P, y = _pool(6, 40, 4)

    def fn(allowed):
        calls.append(allowed.tobytes())
        return branch_and_bound(P, y, costs=np.ones(4), allowed=allowed)

    cache = SelectionCache(fn)
    a = np.array([True, False, True, True])
    cache.get(a)
    cache.get(a.copy())
    cache.get(np.ones(4, bool))
    assert len(calls) == 2
    with pytest.raises(SelectionError):
        cache.get(np.zeros(4, bool))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    metric=st.sampled_from(["log_loss", "accuracy"]),
    n_classes=st.sampled_from([2, 3]),
    k=st.integers(0, 3),
    a_max=st.integers(1, 5),
)
def test_node_bound_is_below_every_completion(seed, metric, n_classes, k, a_max):
    from stream_ensemble.core.selection import Metric
    from stream_ensemble.core.selection.search import Search as _Search

    m = 9
    P, y = _pool(seed, 30, m, n_classes)
    costs = np.zeros(m)
    S, R = list(range(k)), np.arange(k, m)
    search = _Search(P, y, costs, Metric(metric))
    s = P[:, S, :].sum(axis=1)
    b = search.bound(s, k, R, a_max, np.inf)
    sign = -1.0 if metric == "accuracy" else 1.0
    completions = [
        sign * ensemble_score(P, y, np.bincount(S + list(A), minlength=m).astype(float), metric)
        for a in range(1, a_max + 1)
        for A in itertools.combinations(R, a)
    ]
    assert b <= min(completions) + 1e-12


@pytest.mark.parametrize("n_classes", [2, 3])
def test_roc_auc_metric_matches_sklearn(n_classes):
    from sklearn.metrics import roc_auc_score

    P, y = _pool(12, 80, 3, n_classes)
    P = np.round(P, 1)  # force ties in the ranking
    P /= P.sum(axis=2, keepdims=True)
    w = np.array([1.0, 2.0, 0.0])
    avg = (P * (w / w.sum())[None, :, None]).sum(axis=1)
    want = roc_auc_score(y, avg[:, 1]) if n_classes == 2 else roc_auc_score(y, avg, multi_class="ovr")
    assert ensemble_score(P, y, w, "roc_auc") == pytest.approx(want, abs=1e-12)
