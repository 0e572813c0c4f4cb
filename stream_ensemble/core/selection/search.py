"""Incremental scoring of candidate subsets, shared by branch-and-bound and Caruana.

Both selectors grow a subset one member at a time; :class:`Search` keeps the per-row arrays
that make scoring "S plus member j" for every candidate j one vectorised step, and holds the
bounds that let branch-and-bound prune.
"""

from __future__ import annotations

import numpy as np

from stream_ensemble.core.selection.objective import EPS, METRICS, FloatArray, IntArray, Metric, to_loss
from stream_ensemble.types import Labels


class Search:
    """Depth-first subset enumeration with bounds (state of one ``branch_and_bound`` call).

    Each node is a distinct subset ``S``; its children add one member that comes later in the
    quality order, so every subset is visited at most once.
    """

    def __init__(self, P: FloatArray, y: Labels, costs: FloatArray, metric: Metric) -> None:
        self.P, self.y, self.costs, self.metric = P, y, costs, metric
        n, m, n_classes = P.shape
        rows = np.arange(n)
        # (n, m) true-class probability: log loss of an average depends on nothing else.
        self.true = np.ascontiguousarray(P[rows, :, y])
        # (n, m, C) margin of the true class over every class, for the accuracy bound.
        self.margin = self.true[:, :, None] - P if metric is Metric.ACCURACY else None
        self.fn = METRICS[metric].fn

    def loss_of(self, s: FloatArray, k: int) -> float:
        return to_loss(self.metric, self.fn(s / k, self.y))

    def bound(self, s: FloatArray, k: int, R: IntArray, a_max: int, budget_left: float) -> float:
        """Lower bound on the loss of every ``S + A``, ``A`` a non-empty subset of ``R``.

        ``s`` is the (n, C) probability sum over ``S`` and ``k = |S|``.
        """
        if a_max <= 0 or R.size == 0:
            return np.inf
        # The a cheapest members of R must fit the remaining budget, so no completion is larger.
        a_max = min(a_max, int(np.searchsorted(np.cumsum(np.sort(self.costs[R])), budget_left, side="right")))
        if a_max <= 0:
            return np.inf
        if self.metric is Metric.LOG_LOSS:
            return self._bound_log_loss(s, k, R, a_max)
        if self.metric is Metric.ACCURACY:
            return self._bound_accuracy(s, k, R, a_max)
        # ROC AUC has no cheap per-row decomposition: the trivial bound (perfect ranking) is
        # valid, so roc_auc search prunes only by cost and size and relies on its limits.
        return -METRICS[self.metric].best_possible

    @staticmethod
    def _top_cumsum(V: FloatArray, a_max: int) -> FloatArray:
        """(n, a_max) cumulative sums of the a_max largest entries of each row of V (n, r)."""
        if a_max < V.shape[1]:
            V = -np.partition(-V, a_max - 1, axis=1)[:, :a_max]
        return np.cumsum(-np.sort(-V, axis=1), axis=1)

    def _bound_log_loss(self, s: FloatArray, k: int, R: IntArray, a_max: int) -> float:
        # Proof of validity. Any completion S+A (A in R, 1 <= |A| = a <= a_max) gives row i the
        # true-class average (t_S + sum_A t)/(k + a) <= (t_S + top_a(R)_i)/(k + a) <= u_i with
        # u_i = max_a (t_S + top_a(R)_i)/(k + a), because sum_A t never exceeds the sum of the a
        # largest t in R. -log(clip(.)) is non-increasing, so row i's loss >= -log(clip(u_i));
        # averaging these per-row lower bounds gives a lower bound on the mean loss. Each row may
        # pick a different A, which only loosens the bound; it never cuts off the optimum.
        t_s = s[np.arange(s.shape[0]), self.y]
        top = self._top_cumsum(self.true[:, R], a_max)
        u = ((t_s[:, None] + top) / (k + np.arange(1, a_max + 1))).max(axis=1)
        return float(-np.mean(np.log(np.clip(u, EPS, 1.0))))

    def _bound_accuracy(self, s: FloatArray, k: int, R: IntArray, a_max: int) -> float:
        # Row i is correct only if its true class beats (or ties) every class c on the summed
        # probabilities: d_c = sum_{S+A} (p_y - p_c) >= 0 (division by |S+A| keeps the sign).
        # For each c separately, the largest d_c over completions is d_c(S) plus the best
        # cumulative sum of the a largest margins of R (a in 1..a_max). A row for which some c
        # cannot reach 0 is wrong in every completion, so counting the other rows bounds the
        # number of correct rows from above. Relaxing ">" (ties) to ">=" only loosens it.
        d_s = s[np.arange(s.shape[0]), self.y][:, None] - s  # (n, C)
        margins = self.margin[:, R, :]  # type: ignore[index]
        n, r, n_classes = margins.shape
        flat = np.moveaxis(margins, 2, 1).reshape(n * n_classes, r)
        best = self._top_cumsum(flat, a_max).max(axis=1).reshape(n, n_classes)
        possible = np.all(d_s + best >= -1e-12, axis=1)
        return -float(np.mean(possible))



def candidate_losses(search: Search, s: FloatArray, count: int, cand: IntArray) -> FloatArray:
    """Loss of ``(s + P[:, j]) / (count + 1)`` for every ``j`` in ``cand``, vectorised."""
    y, metric = search.y, search.metric
    if metric is Metric.LOG_LOSS:
        t = (s[np.arange(s.shape[0]), y][:, None] + search.true[:, cand]) / (count + 1)
        return np.asarray(-np.mean(np.log(np.clip(t, EPS, 1.0)), axis=0), dtype=np.float64)
    if metric is Metric.ACCURACY:
        pred = np.argmax(s[:, None, :] + search.P[:, cand, :], axis=2)
        return np.asarray(-np.mean(pred == y[:, None], axis=0), dtype=np.float64)
    return np.array([search.loss_of(s + search.P[:, j, :], count + 1) for j in cand])

