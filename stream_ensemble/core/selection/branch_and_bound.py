"""Exact (anytime) branch-and-bound over member subsets."""

from __future__ import annotations

import time

import numpy as np

from stream_ensemble.core.selection.constraints import (
    SelectionResult,
    check_feasible_start,
    inclusive_budget,
    selection_id,
)
from stream_ensemble.core.selection.objective import (
    FloatArray,
    IntArray,
    Metric,
    check_heldout,
    diversity,
    diversity_matrix,
    diversity_of,
    from_loss,
    get_metric,
)
from stream_ensemble.core.selection.search import Search, candidate_losses
from stream_ensemble.errors import SelectionError
from stream_ensemble.types import Labels, Mask, Proba, Weights

# Pruning slack: a subtree is only cut when it cannot beat the incumbent by more than this, so
# rounding in the bound can never hide a strictly better subset.
_TOL = 1e-12


def branch_and_bound(
    P: Proba,
    y: Labels,
    *,
    costs: FloatArray,
    budget: float = np.inf,
    max_members: int | None = None,
    min_diversity: float = 0.0,
    allowed: Mask | None = None,
    metric: str | Metric = Metric.LOG_LOSS,
    node_limit: int = 1_000_000,
    time_limit_s: float = 10.0,
    incumbent: Mask | Weights | None = None,
) -> SelectionResult:
    """Best uniform-weight subset of members by exact (anytime) branch-and-bound.

    Maximises the held-out metric of the soft-voting average of the subset subject to
    ``sum(costs[S]) <= budget``, ``1 <= |S| <= max_members``, ``diversity(S) >= min_diversity``
    and ``S`` within ``allowed``. Each subset is a node visited at most once; a node's children
    add one of its remaining candidates, tried best-first (held-out score of the child, ties by
    index), so the first dive is greedy forward selection. A subtree is cut when a bound that
    never exceeds the true optimum of the subtree (log loss, accuracy; see ``Search``) cannot
    beat the incumbent.

    A weighted ``incumbent`` (e.g. Caruana's weights) takes part in the objective: the result
    is the best of that ensemble and every feasible uniform subset, and the incumbent's score
    prunes from the first node. ``proven_optimal`` then means optimal over that union.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
        Held-out member probabilities.
    y : ndarray of shape (n_events,)
        Integer labels.
    costs : ndarray of shape (n_models,)
        Non-negative member costs.
    budget : float
    max_members : int or None
    min_diversity : float
    allowed : ndarray of shape (n_models,), bool, optional
        Healthy members; the others are never selected.
    metric : {"log_loss", "accuracy", "roc_auc"}
        ``roc_auc`` uses the trivial bound 1.0 (valid, loose): it prunes only by cost and size.
    node_limit, time_limit_s : int, float
        Anytime limits (counted from the call, setup included); when hit, ``proven_optimal``
        is False and ``bound`` reports the best value the unexplored frontier could reach.
        They bind once a feasible subset is known; until then the search may run up to ten
        times either limit.
    incumbent : ndarray of shape (n_models,), bool or float, optional
        Warm start: a mask (uniform weights over it) or non-negative weights; ignored if its
        support is infeasible.

    Returns
    -------
    SelectionResult
        Uniform ``weights`` over the subset, or the incumbent's weights if nothing beat it.

    Raises
    ------
    SelectionError
        Invalid inputs, or no feasible subset (the message names the constraint).
    ConfigError
        Unknown metric or ``max_members < 1``.

    Examples
    --------
    >>> P = np.array([[[0.1, 0.9], [0.6, 0.4], [0.3, 0.7]],
    ...               [[0.8, 0.2], [0.7, 0.3], [0.4, 0.6]]])
    >>> r = branch_and_bound(P, np.array([1, 0]), costs=np.ones(3))
    >>> r.mask.tolist(), r.proven_optimal  # member 0 alone: -(log 0.9 + log 0.8) / 2
    ([True, False, False], True)
    """
    met = get_metric(metric)
    t0 = time.perf_counter()
    P, y, costs, allowed = check_heldout(P, y, costs, allowed)
    budget = inclusive_budget(budget)
    check_feasible_start(costs, allowed, budget, max_members)
    n, m, n_classes = P.shape
    k_max = m if max_members is None else min(int(max_members), m)
    search = Search(P, y, costs, met)
    # Diversity is only needed per node when there is a floor to check.
    D = diversity_matrix(P, y) if min_diversity > 0 else np.zeros((m, m))
    cand = np.flatnonzero(allowed & (costs <= budget))
    if met is Metric.ROC_AUC:
        singles = np.array([search.loss_of(P[:, j, :], 1) for j in cand])
    else:
        singles = candidate_losses(search, np.zeros((n, n_classes)), 0, cand)
    order = cand[np.lexsort((cand, singles))]  # best first, ties by index

    best_loss, best_idx = np.inf, np.empty(0, dtype=np.intp)
    best_w: Weights | None = None  # set while the incumbent (possibly weighted) is the best

    def feasible(idx: IntArray) -> bool:
        return (
            1 <= idx.size <= k_max
            and bool(np.all(allowed[idx]))
            and float(costs[idx].sum()) <= budget
            and diversity_of(D, idx) >= min_diversity
        )

    if incumbent is not None:
        w_inc = np.asarray(incumbent, dtype=np.float64)
        if w_inc.shape != (m,) or np.any(w_inc < 0) or not np.all(np.isfinite(w_inc)):
            raise SelectionError(f"incumbent must be ({m},) bool or non-negative weights")
        inc = np.flatnonzero(w_inc > 0)
        if inc.size and feasible(inc):
            best_w = w_inc / w_inc.sum()
            best_loss, best_idx = search.loss_of(np.einsum("imc,m->ic", P, best_w), 1), inc

    # Frame: (members of S, prob sum (n, C), cost, candidates, [next pointer], bound). The bound
    # was computed on push over all the frame's candidates, so it stays valid for what is left.
    root_bound = np.nan  # computed only if the search stops early
    stack: list[tuple[list[int], FloatArray, float, IntArray, list[int], float]] = [
        ([], np.zeros((n, n_classes)), 0.0, order, [0], root_bound)
    ]
    nodes, stopped = 0, False
    while stack:
        S, s, cost, R, ptr, _ = stack[-1]
        if ptr[0] >= R.size or len(S) >= k_max:
            stack.pop()
            continue
        # Limits bind once a feasible subset is known, so a tight limit still returns one; a
        # search for a first subset meeting the diversity floor gets at most 10x the limits.
        grace = 1 if best_idx.size else 10
        if nodes >= grace * node_limit or time.perf_counter() - t0 > grace * time_limit_s:
            stopped = True
            break
        j = int(R[ptr[0]])
        ptr[0] += 1
        nodes += 1
        S2, s2, cost2 = S + [j], s + P[:, j, :], cost + float(costs[j])
        idx2 = np.array(S2, dtype=np.intp)
        if diversity_of(D, idx2) >= min_diversity:
            loss = search.loss_of(s2, len(S2))
            if loss < best_loss:
                best_loss, best_idx, best_w = loss, idx2, None
        rest = R[ptr[0]:]
        R2 = rest[costs[rest] <= budget - cost2]
        if len(S2) < k_max and R2.size:
            b = search.bound(s2, len(S2), R2, k_max - len(S2), budget - cost2)
            if b < best_loss - _TOL:
                if met is not Metric.ROC_AUC:  # roc_auc has no vectorised child scores
                    child = candidate_losses(search, s2, len(S2), R2)
                    R2 = R2[np.lexsort((R2, child))]
                stack.append((S2, s2, cost2, R2, [0], b))

    if stopped:
        frontier = [
            search.bound(s, len(S), R[ptr[0]:], k_max - len(S), budget - cost) if np.isnan(b) else b
            for S, s, cost, R, ptr, b in stack
        ]
        bound_loss = min([best_loss, *frontier])
    else:
        bound_loss = best_loss
    if best_idx.size == 0:
        why = (
            f"min_diversity {min_diversity}" if not stopped
            else f"search limits (node_limit={node_limit}, time_limit_s={time_limit_s}) before any subset met min_diversity {min_diversity}"
        )
        raise SelectionError(f"infeasible: no subset within budget/max_members/allowed satisfies {why}")

    mask = np.zeros(m, dtype=bool)
    mask[best_idx] = True
    weights = mask / mask.sum() if best_w is None else best_w
    sid = selection_id(mask, weights, method="branch_and_bound", budget=budget, max_members=max_members,
                       min_diversity=min_diversity, metric=met.value)
    return SelectionResult(
        mask=mask, score=from_loss(met, best_loss), bound=from_loss(met, bound_loss), nodes=nodes,
        proven_optimal=not stopped, elapsed_s=time.perf_counter() - t0, cost=float(costs[mask].sum()),
        diversity=diversity(P[:, best_idx], y, np.ones(best_idx.size, dtype=bool)), selection_id=sid,
        weights=weights, metric=met.value, method="branch_and_bound", from_incumbent=best_w is not None,
    )

