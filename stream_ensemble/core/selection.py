"""Member selection on held-out predictions: exact branch-and-bound, Caruana greedy, caching.

Every selector works on held-out (validation or out-of-fold) member probabilities
``P`` of shape ``(n_events, n_models, n_classes)`` and integer labels ``y`` of shape
``(n_events,)``, and scores the ACTUAL combined ensemble: the (weighted) soft-voting average of
the chosen members' probabilities.

Diversity of a subset ``S`` (used as a feasibility floor) is the mean pairwise *disagreement
measure* (Kuncheva & Whitaker 2003) of the members' decisions::

    e[i, j]   = argmax_c P[i, j, c] != y[i]          (ties -> lowest class index)
    dis(j, k) = mean_i ( e[i, j] != e[i, k] )         (one member right, the other wrong)
    div(S)    = mean over unordered pairs {j, k} in S of dis(j, k);   div(S) = 0 if |S| = 1

It lies in ``[0, 1]`` and is not monotone in ``S``, so it is checked on each candidate and never
used to prune.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from stream_ensemble.errors import ConfigError, SelectionError
from stream_ensemble.types import Labels, Mask, Proba, Weights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_EPS = 1e-15
# Pruning slack: a subtree is only cut when it cannot beat the incumbent by more than this, so
# rounding in the bound can never hide a strictly better subset.
_TOL = 1e-12


class Metric(str, Enum):
    """Held-out metric a selector optimises (natural orientation, see ``METRICS``)."""

    LOG_LOSS = "log_loss"
    ACCURACY = "accuracy"
    ROC_AUC = "roc_auc"


def _log_loss(avg: FloatArray, y: Labels) -> float:
    p_true = avg[np.arange(avg.shape[0]), y]
    return float(-np.mean(np.log(np.clip(p_true, _EPS, 1.0))))


def _accuracy(avg: FloatArray, y: Labels) -> float:
    return float(np.mean(np.argmax(avg, axis=1) == y))


def _binary_auc(score: FloatArray, pos: Mask) -> float:
    n_pos = int(pos.sum())
    n_neg = pos.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    # Mann-Whitney U with average ranks for ties == sklearn's roc_auc_score, ~10x faster.
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _roc_auc(avg: FloatArray, y: Labels) -> float:
    if avg.shape[1] == 2:
        return _binary_auc(avg[:, 1], y == 1)
    # Multiclass: unweighted mean of one-vs-rest AUCs (sklearn's multi_class="ovr", macro).
    return float(np.mean([_binary_auc(avg[:, c], y == c) for c in range(avg.shape[1])]))


@dataclass(frozen=True)
class MetricSpec:
    """How to compute a metric on an averaged probability matrix.

    Attributes
    ----------
    fn : callable ``(avg (n, n_classes), y (n,)) -> float``
    greater_is_better : bool
    best_possible : float
        Trivially valid bound (used when no tighter bound is known).
    """

    fn: Callable[[FloatArray, Labels], float]
    greater_is_better: bool
    best_possible: float


METRICS: dict[Metric, MetricSpec] = {
    Metric.LOG_LOSS: MetricSpec(_log_loss, False, 0.0),
    Metric.ACCURACY: MetricSpec(_accuracy, True, 1.0),
    Metric.ROC_AUC: MetricSpec(_roc_auc, True, 1.0),
}


def get_metric(name: str | Metric) -> Metric:
    """Resolve a metric name.

    Parameters
    ----------
    name : str or Metric
        One of ``log_loss``, ``accuracy``, ``roc_auc``.

    Returns
    -------
    Metric

    Raises
    ------
    ConfigError
        Unknown name.
    """
    try:
        return Metric(name)
    except ValueError:
        raise ConfigError(f"unknown metric {name!r}; choose one of: {', '.join(m.value for m in Metric)}") from None


def _to_loss(metric: Metric, value: float) -> float:
    return -value if METRICS[metric].greater_is_better else value


def _from_loss(metric: Metric, loss: float) -> float:
    return -loss if METRICS[metric].greater_is_better else loss


@dataclass(frozen=True)
class SelectionResult:
    """The outcome of a member selection.

    Attributes
    ----------
    mask : ndarray of shape (n_models,), bool
        Selected members.
    score : float
        Held-out metric of the combined ensemble, natural orientation.
    bound : float
        Best value any unexplored subset could still reach (natural orientation); equals
        ``score`` when ``proven_optimal``.
    nodes : int
        Subsets evaluated.
    proven_optimal : bool
        The search finished without hitting a node or time limit.
    elapsed_s : float
    cost : float
        Sum of the selected members' costs.
    diversity : float
        Mean pairwise disagreement of the selected members (module docstring).
    selection_id : str
        Short stable hash of the mask, weights and constraints (for explanations).
    weights : ndarray of shape (n_models,)
        Combination weights, summing to 1, zero outside ``mask``.
    metric : str
    method : str
    from_incumbent : bool
        Branch-and-bound found nothing better than the warm start it was given.
    """

    mask: Mask
    score: float
    bound: float
    nodes: int
    proven_optimal: bool
    elapsed_s: float
    cost: float
    diversity: float
    selection_id: str
    weights: Weights
    metric: str = Metric.LOG_LOSS.value
    method: str = "branch_and_bound"
    from_incumbent: bool = False


def check_heldout(
    P: Proba, y: Labels, costs: FloatArray | None, allowed: Mask | None
) -> tuple[FloatArray, Labels, FloatArray, Mask]:
    """Validate held-out selection inputs and fill defaults.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
        Finite member probabilities.
    y : ndarray of shape (n_events,)
        Integer labels in ``[0, n_classes)``.
    costs : ndarray of shape (n_models,) or None
        Non-negative; zeros when ``None``.
    allowed : ndarray of shape (n_models,) or None
        All ``True`` when ``None``.

    Returns
    -------
    tuple
        ``(P float64, y int64, costs float64, allowed bool)``.

    Raises
    ------
    SelectionError
        Any shape, range or finiteness violation.
    """
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y)
    if P.ndim != 3 or P.shape[0] == 0 or P.shape[1] == 0 or P.shape[2] < 2:
        raise SelectionError(f"P must be (n_events>0, n_models>0, n_classes>=2), got {P.shape}")
    n, m, n_classes = P.shape
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise SelectionError(f"y must be ({n},) int, got {y.shape} {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise SelectionError(f"labels must lie in [0, {n_classes})")
    if not np.all(np.isfinite(P)):
        raise SelectionError("held-out probabilities must be finite (no NaN: every member must run)")
    c = np.zeros(m) if costs is None else np.asarray(costs, dtype=np.float64)
    if c.shape != (m,) or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise SelectionError(f"costs must be ({m},) finite non-negative")
    a = np.ones(m, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if a.shape != (m,):
        raise SelectionError(f"allowed must be ({m},) bool, got {a.shape}")
    return P, y.astype(np.int64), c, a


def diversity_matrix(P: Proba, y: Labels) -> FloatArray:
    """Pairwise disagreement of member decisions.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    y : ndarray of shape (n_events,)

    Returns
    -------
    ndarray of shape (n_models, n_models)
        ``dis(j, k)`` as defined in the module docstring; zero diagonal.

    Raises
    ------
    SelectionError
        Invalid shapes.
    """
    P, y, _, _ = check_heldout(P, y, None, None)
    err = (np.argmax(P, axis=2) != y[:, None]).astype(np.float64)
    ok = 1.0 - err
    return np.asarray((err.T @ ok + ok.T @ err) / P.shape[0], dtype=np.float64)


def _diversity_of(D: FloatArray, idx: IntArray) -> float:
    k = idx.shape[0]
    if k < 2:
        return 0.0
    idx = np.sort(idx)
    return float(D[np.ix_(idx, idx)].sum() / (k * (k - 1)))


def diversity(P: Proba, y: Labels, mask: Mask) -> float:
    """Mean pairwise disagreement of the members in ``mask`` (module docstring).

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    y : ndarray of shape (n_events,)
    mask : ndarray of shape (n_models,), bool

    Returns
    -------
    float
        In ``[0, 1]``; 0 for fewer than two members.

    Raises
    ------
    SelectionError
        Invalid shapes.
    """
    return _diversity_of(diversity_matrix(P, y), np.flatnonzero(np.asarray(mask, dtype=bool)))


def ensemble_score(P: Proba, y: Labels, weights: Weights, metric: str | Metric = Metric.LOG_LOSS) -> float:
    """Held-out metric of the weighted soft-voting average.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    y : ndarray of shape (n_events,)
    weights : ndarray of shape (n_models,)
        Non-negative, not all zero; normalised here.
    metric : str or Metric

    Returns
    -------
    float
        Natural orientation (log loss: lower is better).

    Raises
    ------
    ConfigError
        Unknown metric.
    SelectionError
        Invalid shapes or weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.6, 0.4]]])
    >>> round(ensemble_score(P, np.array([1]), np.array([1.0, 1.0])), 4)  # -log(0.6)
    0.5108
    """
    met = get_metric(metric)
    P, y, _, _ = check_heldout(P, y, None, None)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (P.shape[1],) or np.any(w < 0) or w.sum() <= 0:
        raise SelectionError("weights must be (n_models,) non-negative with a positive sum")
    avg = np.einsum("imc,m->ic", P, w / w.sum())
    return METRICS[met].fn(avg, y)


def selection_id(mask: Mask, weights: Weights, **constraints: object) -> str:
    """Short stable hash of a selection and the constraints it was made under.

    Parameters
    ----------
    mask : ndarray of shape (n_models,), bool
    weights : ndarray of shape (n_models,)
    **constraints
        Any ``repr``-able values (budget, max_members, metric, method...).

    Returns
    -------
    str
        12 hex characters.
    """
    h = hashlib.sha256(np.asarray(mask, dtype=bool).tobytes())
    h.update(np.round(np.asarray(weights, dtype=np.float64), 12).tobytes())
    h.update(repr(sorted(constraints.items())).encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class SelectionConstraints:
    """Constraints and search limits for a selection (validated on construction).

    Parameters
    ----------
    budget : float
        Maximum total member cost (predict seconds per 1,000 rows); ``inf`` = no limit.
    max_members : int or None
        Maximum subset size; ``None`` = no limit.
    min_diversity : float
        Diversity floor in ``[0, 1]`` (module docstring).
    metric : str
    node_limit : int
        Branch-and-bound node limit.
    time_limit_s : float
        Branch-and-bound wall-clock limit.
    n_iterations : int
        Caruana iterations (also its warm start for branch-and-bound).

    Raises
    ------
    ConfigError
        A value out of range or an unknown metric.
    """

    budget: float = float("inf")
    max_members: int | None = None
    min_diversity: float = 0.0
    metric: str = Metric.LOG_LOSS.value
    node_limit: int = 1_000_000
    time_limit_s: float = 2.0
    n_iterations: int = 50

    def __post_init__(self) -> None:
        get_metric(self.metric)
        if not (self.budget > 0 or self.budget == 0):  # rejects NaN and negatives
            raise ConfigError(f"budget must be >= 0, got {self.budget}")
        if self.max_members is not None and self.max_members < 1:
            raise ConfigError(f"max_members must be >= 1 or None, got {self.max_members}")
        if not 0.0 <= self.min_diversity <= 1.0:
            raise ConfigError(f"min_diversity must lie in [0, 1], got {self.min_diversity}")
        if self.node_limit < 1 or not self.time_limit_s > 0 or self.n_iterations < 1:
            raise ConfigError("node_limit, time_limit_s and n_iterations must be positive")


def _inclusive(budget: float) -> float:
    """The budget widened by float rounding, so a subset whose cost equals it stays feasible.

    Costs are summed incrementally in the search; ``budget - a - b`` can land one ulp below
    ``c`` when ``a + b + c == budget`` (found by the brute-force property test).
    """
    return float(budget) + 1e-9 * max(1.0, abs(float(budget))) if np.isfinite(budget) else float(budget)


def _check_feasible_start(costs: FloatArray, allowed: Mask, budget: float, max_members: int | None) -> None:
    if max_members is not None and max_members < 1:
        raise ConfigError(f"max_members must be >= 1 or None, got {max_members}")
    if not allowed.any():
        raise SelectionError("infeasible: no member is allowed (all members unhealthy or excluded)")
    if not np.any(costs[allowed] <= budget):
        raise SelectionError(
            f"infeasible: budget {budget} is below the cheapest allowed member's cost {costs[allowed].min()}"
        )


class _Search:
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
        return _to_loss(self.metric, self.fn(s / k, self.y))

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
        return float(-np.mean(np.log(np.clip(u, _EPS, 1.0))))

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
    never exceeds the true optimum of the subtree (log loss, accuracy; see ``_Search``) cannot
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
    budget = _inclusive(budget)
    _check_feasible_start(costs, allowed, budget, max_members)
    n, m, n_classes = P.shape
    k_max = m if max_members is None else min(int(max_members), m)
    search = _Search(P, y, costs, met)
    # Diversity is only needed per node when there is a floor to check.
    D = diversity_matrix(P, y) if min_diversity > 0 else np.zeros((m, m))
    cand = np.flatnonzero(allowed & (costs <= budget))
    if met is Metric.ROC_AUC:
        singles = np.array([search.loss_of(P[:, j, :], 1) for j in cand])
    else:
        singles = _candidate_losses(search, np.zeros((n, n_classes)), 0, cand)
    order = cand[np.lexsort((cand, singles))]  # best first, ties by index

    best_loss, best_idx = np.inf, np.empty(0, dtype=np.intp)
    best_w: Weights | None = None  # set while the incumbent (possibly weighted) is the best

    def feasible(idx: IntArray) -> bool:
        return (
            1 <= idx.size <= k_max
            and bool(np.all(allowed[idx]))
            and float(costs[idx].sum()) <= budget
            and _diversity_of(D, idx) >= min_diversity
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
        if _diversity_of(D, idx2) >= min_diversity:
            loss = search.loss_of(s2, len(S2))
            if loss < best_loss:
                best_loss, best_idx, best_w = loss, idx2, None
        rest = R[ptr[0]:]
        R2 = rest[costs[rest] <= budget - cost2]
        if len(S2) < k_max and R2.size:
            b = search.bound(s2, len(S2), R2, k_max - len(S2), budget - cost2)
            if b < best_loss - _TOL:
                if met is not Metric.ROC_AUC:  # roc_auc has no vectorised child scores
                    child = _candidate_losses(search, s2, len(S2), R2)
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
        mask=mask, score=_from_loss(met, best_loss), bound=_from_loss(met, bound_loss), nodes=nodes,
        proven_optimal=not stopped, elapsed_s=time.perf_counter() - t0, cost=float(costs[mask].sum()),
        diversity=diversity(P[:, best_idx], y, np.ones(best_idx.size, dtype=bool)), selection_id=sid,
        weights=weights, metric=met.value, method="branch_and_bound", from_incumbent=best_w is not None,
    )


def _candidate_losses(search: _Search, s: FloatArray, count: int, cand: IntArray) -> FloatArray:
    """Loss of ``(s + P[:, j]) / (count + 1)`` for every ``j`` in ``cand``, vectorised."""
    y, metric = search.y, search.metric
    if metric is Metric.LOG_LOSS:
        t = (s[np.arange(s.shape[0]), y][:, None] + search.true[:, cand]) / (count + 1)
        return np.asarray(-np.mean(np.log(np.clip(t, _EPS, 1.0)), axis=0), dtype=np.float64)
    if metric is Metric.ACCURACY:
        pred = np.argmax(s[:, None, :] + search.P[:, cand, :], axis=2)
        return np.asarray(-np.mean(pred == y[:, None], axis=0), dtype=np.float64)
    return np.array([search.loss_of(s + search.P[:, j, :], count + 1) for j in cand])


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
    budget = _inclusive(budget)
    _check_feasible_start(costs, allowed, budget, max_members)
    n, m, n_classes = P.shape
    k_max = m if max_members is None else max_members
    rng = None if random_state is None else np.random.default_rng(random_state)
    search = _Search(P, y, costs, met)
    allowed_idx = np.flatnonzero(allowed & (costs <= budget))
    singles = _candidate_losses(search, np.zeros((n, n_classes)), 0, allowed_idx)

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
        losses = _candidate_losses(search, s, int(counts.sum()), cand)
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


class SelectionMethod(str, Enum):
    """Selectors available through ``select`` (registry: ``SELECTORS``)."""

    BRANCH_AND_BOUND = "branch_and_bound"
    CARUANA = "caruana"


Selector = Callable[..., SelectionResult]


def _select_bnb(
    P: Proba, y: Labels, costs: FloatArray, c: SelectionConstraints, allowed: Mask | None, incumbent: Mask | Weights | None
) -> SelectionResult:
    t0 = time.perf_counter()
    if incumbent is None:
        # Weighted incumbent: uniform subsets must beat Caruana's weighted ensemble to replace it.
        incumbent = _select_caruana(P, y, costs, c, allowed, None).weights
    # The warm start counts against the caller's limit; 5% is kept for the search's teardown.
    time_left = max(0.95 * c.time_limit_s - (time.perf_counter() - t0), 1e-3)
    return branch_and_bound(
        P, y, costs=costs, budget=c.budget, max_members=c.max_members, min_diversity=c.min_diversity,
        allowed=allowed, metric=c.metric, node_limit=c.node_limit, time_limit_s=time_left,
        incumbent=incumbent,
    )


def _select_caruana(
    P: Proba, y: Labels, costs: FloatArray, c: SelectionConstraints, allowed: Mask | None, incumbent: Mask | Weights | None
) -> SelectionResult:
    return caruana(P, y, n_iterations=c.n_iterations, allowed=allowed, costs=costs, budget=c.budget,
                   metric=c.metric, max_members=c.max_members)


SELECTORS: dict[SelectionMethod, Callable[..., SelectionResult]] = {
    SelectionMethod.BRANCH_AND_BOUND: _select_bnb,
    SelectionMethod.CARUANA: _select_caruana,
}


def select(
    P: Proba,
    y: Labels,
    *,
    costs: FloatArray,
    constraints: SelectionConstraints | None = None,
    method: str | SelectionMethod = SelectionMethod.BRANCH_AND_BOUND,
    allowed: Mask | None = None,
    incumbent: Mask | Weights | None = None,
) -> SelectionResult:
    """Select members under ``constraints`` with a registered method.

    Branch-and-bound is warm-started from Caruana's weighted ensemble (same budget and
    ``max_members``) unless ``incumbent`` is given: it returns a uniform subset only if one
    beats that ensemble on the held-out rows, otherwise Caruana's weights. Caruana itself
    ignores ``min_diversity`` (an incumbent below the floor is dropped by branch-and-bound).

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    y : ndarray of shape (n_events,)
    costs : ndarray of shape (n_models,)
    constraints : SelectionConstraints, optional
    method : {"branch_and_bound", "caruana"}
    allowed : ndarray of shape (n_models,), bool, optional
    incumbent : ndarray of shape (n_models,), bool or float, optional
        Mask or weights to warm-start branch-and-bound with (skips the Caruana run).

    Returns
    -------
    SelectionResult

    Raises
    ------
    ConfigError
        Unknown method or metric.
    SelectionError
        Invalid inputs or infeasible constraints.
    """
    try:
        fn = SELECTORS[SelectionMethod(method)]
    except ValueError:
        raise ConfigError(f"unknown selection method {method!r}; choose one of: {', '.join(s.value for s in SelectionMethod)}") from None
    return fn(P, y, np.asarray(costs, dtype=np.float64), constraints or SelectionConstraints(), allowed, incumbent)


class SelectionCache:
    """Memoised selection per distinct healthy set.

    Parameters
    ----------
    select_fn : callable ``(allowed (n_models,) bool) -> SelectionResult``

    Notes
    -----
    The only mutable state is the result dict, keyed by ``allowed.tobytes()``; meant for a
    single worker thread.
    """

    def __init__(self, select_fn: Callable[[Mask], SelectionResult]) -> None:
        self.select_fn = select_fn
        self._results: dict[bytes, SelectionResult] = {}

    def get(self, allowed: Mask) -> SelectionResult:
        """Selection for this healthy set (computed once, then cached).

        Parameters
        ----------
        allowed : ndarray of shape (n_models,), bool

        Returns
        -------
        SelectionResult

        Raises
        ------
        SelectionError
            No feasible selection among the allowed members.
        """
        key = np.ascontiguousarray(allowed, dtype=bool).tobytes()
        hit = self._results.get(key)
        if hit is None:
            hit = self._results[key] = self.select_fn(np.frombuffer(key, dtype=bool).copy())
        return hit

    def __len__(self) -> int:
        return len(self._results)

    @classmethod
    def from_validation(
        cls,
        P: Proba,
        y: Labels,
        costs: FloatArray,
        constraints: SelectionConstraints | None = None,
        *,
        reselect_time_limit_s: float = 0.02,
    ) -> SelectionCache:
        """Cache over held-out data: full selection for the all-healthy set, fast re-selection after.

        The all-healthy selection runs now with ``constraints``; a new healthy set runs
        branch-and-bound with ``reselect_time_limit_s``, warm-started from the surviving
        members of the full selection (so it returns in milliseconds and is never worse than
        simply dropping the unhealthy members, when that is feasible).

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, n_classes)
        y : ndarray of shape (n_events,)
        costs : ndarray of shape (n_models,)
        constraints : SelectionConstraints, optional
        reselect_time_limit_s : float

        Returns
        -------
        SelectionCache

        Raises
        ------
        SelectionError
            The all-healthy problem is infeasible or inputs are invalid.
        ConfigError
            Invalid constraints.
        """
        c = constraints or SelectionConstraints()
        base = select(P, y, costs=costs, constraints=c)
        fast = replace(c, time_limit_s=reselect_time_limit_s)

        def select_fn(allowed: Mask) -> SelectionResult:
            return select(P, y, costs=costs, constraints=fast, allowed=allowed, incumbent=base.weights * allowed)

        cache = cls(select_fn)
        cache._results[np.ones(base.mask.shape[0], dtype=bool).tobytes()] = base
        return cache
