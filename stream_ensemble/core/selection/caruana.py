"""Caruana et al. (2004) greedy ensemble selection with replacement."""

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
    METRICS,
    FloatArray,
    IntArray,
    Metric,
    check_heldout,
    diversity,
    ensemble_score,
    get_metric,
)
from stream_ensemble.core.selection.search import Search, candidate_losses
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Proba


def caruana(
    P: Proba,
    y: Labels,
    *,
    n_iterations: int = 50,
    allowed: Mask | None = None,
    costs: FloatArray | None = None,
    budget: float = np.inf,
    metric: str | Metric = Metric.LOG_LOSS,
    init_best_n: int = 1,
    max_members: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> SelectionResult:
    """Caruana et al. (2004) greedy ensemble selection with replacement.

    Starts from the ``init_best_n`` best single members (sorted initialisation), then
    ``n_iterations`` times adds the member (repeats allowed) that most improves the held-out
    metric of the running average, and keeps the best iteration (as AutoGluon does). A member
    is run once however often it is picked, so ``budget`` and ``max_members`` count distinct
    members.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    y : ndarray of shape (n_events,)
    n_iterations : int
    allowed : ndarray of shape (n_models,), bool, optional
    costs : ndarray of shape (n_models,), optional
        Zero when omitted.
    budget : float
    metric : {"log_loss", "accuracy", "roc_auc"}
    init_best_n : int
    max_members : int or None
        Limit on distinct members.
    random_state : int, Generator or None
        ``None``: ties go to the lowest index; otherwise ties are broken at random.

    Returns
    -------
    SelectionResult
        ``weights`` = selection counts / total; ``bound`` is the trivial metric bound.

    Raises
    ------
    SelectionError
        Invalid inputs or nothing allowed within the budget.
    ConfigError
        Unknown metric or a non-positive ``n_iterations`` / ``init_best_n``.
    """
    met = get_metric(metric)
    t0 = time.perf_counter()
    if n_iterations < 1 or init_best_n < 1:
        raise ConfigError("n_iterations and init_best_n must be >= 1")
    P, y, costs, allowed = check_heldout(P, y, costs, allowed)
    budget = inclusive_budget(budget)
    check_feasible_start(costs, allowed, budget, max_members)
    n, m, n_classes = P.shape
    k_max = m if max_members is None else max_members
    rng = None if random_state is None else np.random.default_rng(random_state)
    search = Search(P, y, costs, met)
    allowed_idx = np.flatnonzero(allowed & (costs <= budget))
    singles = candidate_losses(search, np.zeros((n, n_classes)), 0, allowed_idx)

    counts = np.zeros(m, dtype=np.int64)
    s = np.zeros((n, n_classes))
    nodes = allowed_idx.size

    def add(j: int) -> None:
        nonlocal s
        counts[j] += 1
        s = s + P[:, j, :]

    def can_add(c: IntArray) -> Mask:
        new = counts[c] == 0
        spent = float(costs[counts > 0].sum())
        ok: Mask = ~new | ((costs[c] + spent <= budget) & (int((counts > 0).sum()) < k_max))
        return ok

    for j in allowed_idx[np.lexsort((allowed_idx, singles))][:init_best_n]:
        if can_add(np.array([j]))[0]:
            add(int(j))
    trajectory = [(search.loss_of(s, int(counts.sum())), counts.copy())]
    for _ in range(n_iterations):
        cand = allowed_idx[can_add(allowed_idx)]
        losses = candidate_losses(search, s, int(counts.sum()), cand)
        nodes += cand.size
        ties = np.flatnonzero(losses == losses.min())
        pick = ties[0] if rng is None else rng.choice(ties)
        add(int(cand[pick]))
        trajectory.append((float(losses[pick]), counts.copy()))

    best = min(range(len(trajectory)), key=lambda i: (trajectory[i][0], i))
    final = trajectory[best][1]
    mask = final > 0
    weights = final / final.sum()
    sid = selection_id(mask, weights, method="caruana", budget=budget, max_members=max_members,
                       metric=met.value, n_iterations=n_iterations)
    return SelectionResult(
        mask=mask, score=ensemble_score(P, y, weights, met), bound=METRICS[met].best_possible, nodes=nodes,
        proven_optimal=False, elapsed_s=time.perf_counter() - t0, cost=float(costs[mask].sum()),
        diversity=diversity(P, y, mask), selection_id=sid, weights=weights,
        metric=met.value, method="caruana",
    )
