"""What selection optimises: held-out metrics of the averaged ensemble, and member diversity.

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

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from stream_ensemble.errors import ConfigError, SelectionError
from stream_ensemble.types import Labels, Mask, Proba, Weights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

EPS = 1e-15


class Metric(str, Enum):
    """Held-out metric a selector optimises (natural orientation, see ``METRICS``)."""

    LOG_LOSS = "log_loss"
    ACCURACY = "accuracy"
    ROC_AUC = "roc_auc"


def _log_loss(avg: FloatArray, y: Labels) -> float:
    p_true = avg[np.arange(avg.shape[0]), y]
    return float(-np.mean(np.log(np.clip(p_true, EPS, 1.0))))


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


def to_loss(metric: Metric, value: float) -> float:
    return -value if METRICS[metric].greater_is_better else value


def from_loss(metric: Metric, loss: float) -> float:
    return -loss if METRICS[metric].greater_is_better else loss


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


def diversity_of(D: FloatArray, idx: IntArray) -> float:
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
    return diversity_of(diversity_matrix(P, y), np.flatnonzero(np.asarray(mask, dtype=bool)))


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

