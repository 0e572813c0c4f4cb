"""Voting and averaging rules: pure functions plus thin sklearn-style wrappers.

All rules renormalise over the members present in each row. A row with no present member (or
whose present members all carry zero weight) gets the prior: uniform for the pure functions and
for unfitted estimators, the class frequencies of ``y`` once an estimator has been fit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, softmax

from stream_ensemble.core.combiners._base import (
    EPS,
    Combiner,
    CombinerName,
    FloatArray,
    IdentityLink,
    Link,
    LogisticLink,
    clipped_log_odds,
    normalised_weights,
    validate_proba,
)
from stream_ensemble.errors import CombinerError, ConfigError
from stream_ensemble.types import Labels, Mask, Proba


def check_weights(weights: Any, n_models: int) -> FloatArray:
    """Validate explicit member weights and return them as float64, shape (n_models,).

    Parameters
    ----------
    weights : array-like of shape (n_models,)
        Non-negative, finite, not all zero.
    n_models : int

    Returns
    -------
    ndarray of shape (n_models,)

    Raises
    ------
    CombinerError
        If the length does not match ``n_models``.
    ConfigError
        If a weight is negative or not finite, or all are zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_models,):
        raise CombinerError(f"weights has shape {w.shape}, expected ({n_models},)")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ConfigError("weights must be finite, non-negative and not all zero")
    return w


def _resolve(P: Proba, mask: Mask | None, weights: Any | None) -> tuple[Proba, FloatArray]:
    clean, present = validate_proba(P, mask)
    m = clean.shape[1]
    w = np.ones(m) if weights is None else check_weights(weights, m)
    return clean, normalised_weights(w, present)


def _uniform_where_empty(out: FloatArray, w_norm: FloatArray) -> FloatArray:
    out[w_norm.sum(axis=1) == 0] = 1.0 / out.shape[1]
    return out


def _average(P: Proba, w_norm: FloatArray) -> FloatArray:
    return np.asarray(np.matmul(w_norm[:, None, :], P)[:, 0, :], dtype=np.float64)


def _top_class(P: Proba) -> npt.NDArray[np.int64]:
    """Index of each member's top class, shape (n, m); ties go to the lower class index."""
    if P.shape[2] == 2:
        return (P[:, :, 1] > P[:, :, 0]).astype(np.int64)
    best, top = P[:, :, 0], np.zeros(P.shape[:2], dtype=np.int64)
    for k in range(1, P.shape[2]):  # explicit loop: argmax over a tiny last axis is slow
        better = P[:, :, k] > best
        best = np.where(better, P[:, :, k], best)
        top[better] = k
    return top


def _votes(P: Proba, w_norm: FloatArray) -> FloatArray:
    top = _top_class(P)
    return np.column_stack([(w_norm * (top == k)).sum(axis=1) for k in range(P.shape[2])])


def _log_pool(P: Proba, w_norm: FloatArray) -> FloatArray:
    if P.shape[2] == 2:
        p1 = expit((w_norm * clipped_log_odds(P)).sum(axis=1))
        return np.column_stack([1.0 - p1, p1])
    scores = np.matmul(w_norm[:, None, :], np.log(np.clip(P, EPS, 1.0 - EPS)))[:, 0, :]
    return np.asarray(softmax(scores, axis=1), dtype=np.float64)


def soft_vote(P: Proba, mask: Mask | None = None, weights: Any | None = None) -> FloatArray:
    """(Weighted) mean of the present members' probabilities.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    mask : ndarray of bool, shape (n_events, n_models), optional
        Present members; default all.
    weights : array-like of shape (n_models,), optional
        Non-negative member weights, renormalised over present members; default equal.

    Returns
    -------
    ndarray of shape (n_events, n_classes)
        Rows sum to 1; uniform for rows without a weighted present member.

    Raises
    ------
    CombinerError
        On invalid shapes or values.
    ConfigError
        On invalid weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> soft_vote(P, np.array([[True, True, False]]))
    array([[0.3, 0.7]])
    >>> soft_vote(P, weights=[1.0, 3.0, 0.0])
    array([[0.35, 0.65]])
    """
    clean, w_norm = _resolve(P, mask, weights)
    return _uniform_where_empty(_average(clean, w_norm), w_norm)


def hard_vote(P: Proba, mask: Mask | None = None, weights: Any | None = None) -> FloatArray:
    """Majority vote: the (weighted) fraction of present members whose top class is each class.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    mask : ndarray of bool, shape (n_events, n_models), optional
    weights : array-like of shape (n_models,), optional

    Returns
    -------
    ndarray of shape (n_events, n_classes)
        Vote fractions (ties stay fractions); uniform for rows without a present member.

    Raises
    ------
    CombinerError
        On invalid shapes or values.
    ConfigError
        On invalid weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> hard_vote(P).round(4)
    array([[0.3333, 0.6667]])
    >>> hard_vote(P, np.array([[False, True, True]]))
    array([[0.5, 0.5]])
    """
    clean, w_norm = _resolve(P, mask, weights)
    return _uniform_where_empty(_votes(clean, w_norm), w_norm)


def geometric_mean(P: Proba, mask: Mask | None = None, weights: Any | None = None) -> FloatArray:
    """Normalised (weighted) geometric mean of clipped probabilities (log-linear pooling).

    Probabilities are clipped to ``[1e-6, 1 - 1e-6]``. For two classes this is the sigmoid of
    the weighted mean log-odds.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    mask : ndarray of bool, shape (n_events, n_models), optional
    weights : array-like of shape (n_models,), optional

    Returns
    -------
    ndarray of shape (n_events, n_classes)

    Raises
    ------
    CombinerError
        On invalid shapes or values.
    ConfigError
        On invalid weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]]])
    >>> geometric_mean(P).round(6)
    array([[0.5, 0.5]])
    >>> geometric_mean(P, np.array([[True, True, False]])).round(4)  # sigmoid(log(4) / 2)
    array([[0.3333, 0.6667]])
    """
    clean, w_norm = _resolve(P, mask, weights)
    return _uniform_where_empty(_log_pool(clean, w_norm), w_norm)


class _LinearRule(Combiner):
    """A rule pooling members with fixed per-member weights, renormalised per row.

    Subclasses say how to pool (``_pool``), what each member adds in the additive space
    (``_member_score``) and how that space maps to a probability (``link``).
    """

    link: ClassVar[Link] = IdentityLink()

    def _member_weights(self, n_models: int) -> FloatArray:
        return np.ones(n_models)

    def _member_importance(self, n_models: int) -> FloatArray:
        return self._member_weights(n_models)

    def _pool(self, P: Proba, w_norm: FloatArray) -> FloatArray:
        return _average(P, w_norm)

    def _member_score(self, P: Proba) -> FloatArray:
        return np.asarray(P[:, :, 1], dtype=np.float64)

    def _normalised(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        w_norm = normalised_weights(self._member_weights(P.shape[1]), mask)
        return w_norm, w_norm.sum(axis=1) == 0

    def _combine(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        w_norm, empty = self._normalised(P, mask)
        return self._pool(P, w_norm), empty

    def _decompose(self, P: Proba, mask: Mask) -> tuple[FloatArray, FloatArray, Link, Mask]:
        w_norm, empty = self._normalised(P, mask)
        return np.zeros(P.shape[0]), w_norm * self._member_score(P), self.link, empty


class HardVoting(_LinearRule):
    """Majority vote; outputs per-class vote fractions. Needs no fit.

    Contributions (vote-fraction space): baseline 0, member j adds ``[top class of j is 1] / k``
    with k the number of present members; the link is the identity.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> HardVoting().predict_proba(P).round(4)
    array([[0.3333, 0.6667]])
    """

    name: ClassVar[CombinerName] = CombinerName.HARD_VOTING
    space: ClassVar[str] = "vote_fraction"
    stateless: ClassVar[bool] = True

    def _pool(self, P: Proba, w_norm: FloatArray) -> FloatArray:
        return _votes(P, w_norm)

    def _member_score(self, P: Proba) -> FloatArray:
        return np.asarray(_top_class(P) == 1, dtype=np.float64)


class SoftVoting(_LinearRule):
    """Mean of the present members' probabilities. Needs no fit.

    Contributions (probability space): baseline 0, member j adds ``p_j / k``; identity link.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> SoftVoting().predict_proba(P, np.array([[True, True, False]]))
    array([[0.3, 0.7]])
    """

    name: ClassVar[CombinerName] = CombinerName.SOFT_VOTING
    space: ClassVar[str] = "probability"
    stateless: ClassVar[bool] = True


class Weighted(_LinearRule):
    """Weighted mean of member probabilities, with explicit or fitted non-negative weights.

    With ``weights=None``, ``fit`` minimises the held-out log loss of the weighted mean over
    the simplex, parametrised as ``w = softmax(theta)`` (L-BFGS with an analytic gradient,
    started from equal weights). Fitted weights are therefore strictly positive; a useless
    member gets a weight near 0. Bounded ``w >= 0`` was tried and rejected: at ``w_j = 0`` a
    row whose only present member is j jumps from ``p_j`` to the prior, which makes the
    objective discontinuous, and the bounded solver is not invariant to model order.
    With explicit ``weights`` (e.g. from Caruana greedy selection done elsewhere) the rule
    needs no fit. In both cases weights are renormalised over the present members of each row;
    rows whose present members all have zero weight get the prior.

    Contributions (probability space): baseline 0, member j adds ``w_j p_j / sum_present w``.

    Parameters
    ----------
    weights : array-like of shape (n_models,), optional
        Explicit non-negative weights; ``None`` to fit them.
    max_iter : int, default=200
        Iteration cap of the optimiser when fitting.

    Attributes
    ----------
    weights_ : ndarray of shape (n_models,)
        Weights in use, summing to 1.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> Weighted(weights=[1.0, 3.0, 0.0]).predict_proba(P)
    array([[0.35, 0.65]])
    """

    name: ClassVar[CombinerName] = CombinerName.WEIGHTED
    space: ClassVar[str] = "probability"

    def __init__(self, weights: Any | None = None, max_iter: int = 200) -> None:
        self.weights = weights
        self.max_iter = max_iter

    def __sklearn_is_fitted__(self) -> bool:
        return self.weights is not None or hasattr(self, "weights_")

    def _member_weights(self, n_models: int) -> FloatArray:
        if hasattr(self, "weights_"):
            return np.asarray(self.weights_, dtype=np.float64)
        return check_weights(self.weights, n_models)

    def _fit(self, P: Proba, y: Labels, mask: Mask) -> None:
        m = P.shape[1]
        if self.weights is not None:
            w = check_weights(self.weights, m)
            self.weights_ = w / w.sum()
            return
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"max_iter must be a positive int, got {self.max_iter!r}")
        # Probability each present member gives the true class; absent entries are 0 already.
        q = np.maximum(P[np.arange(P.shape[0]), :, y], EPS) * mask
        maskf = mask.astype(np.float64)
        keep = mask.any(axis=1)
        q, maskf = q[keep], maskf[keep]
        n = q.shape[0]

        def loss_grad(theta: FloatArray) -> tuple[float, FloatArray]:
            w = softmax(theta)
            num = q @ w
            den = maskf @ w
            loss = -np.log(num / den).sum() / n
            g_w = -(q / num[:, None] - maskf / den[:, None]).sum(axis=0) / n
            # Chain rule through the softmax; the mean-theta penalty removes the flat
            # direction (adding a constant to theta changes nothing).
            shift = theta.mean()
            g_theta = w * (g_w - w @ g_w) + shift / m
            return float(loss + 0.5 * shift**2), np.asarray(g_theta, dtype=np.float64)

        result = minimize(loss_grad, np.zeros(m), jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iter, "ftol": 1e-13, "gtol": 1e-9})
        self.weights_ = np.asarray(softmax(result.x), dtype=np.float64)
        # A plain summary, not scipy's result object: the saved state holds data only.
        self.optimizer_result_ = {"success": bool(result.success), "nit": int(result.nit),
                                  "fun": float(result.fun), "message": str(result.message)}


class GeometricMean(_LinearRule):
    """Normalised (weighted) geometric mean of clipped probabilities. Needs no fit.

    Probabilities are clipped to ``[1e-6, 1 - 1e-6]``; for two classes the output is
    ``sigmoid(sum_j w_j logit(p_j) / sum_present w)``, the weighted mean log-odds.

    Contributions (log-odds space): baseline 0, member j adds
    ``w_j (log p_j1 - log p_j0) / sum_present w``; the link is the sigmoid.

    Parameters
    ----------
    weights : array-like of shape (n_models,), optional
        Non-negative member weights; default equal.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]]])
    >>> GeometricMean().predict_proba(P, np.array([[True, True, False]])).round(4)
    array([[0.3333, 0.6667]])
    """

    name: ClassVar[CombinerName] = CombinerName.GEOMETRIC_MEAN
    space: ClassVar[str] = "log_odds"
    stateless: ClassVar[bool] = True
    link: ClassVar[Link] = LogisticLink()

    def __init__(self, weights: Any | None = None) -> None:
        self.weights = weights

    def _member_weights(self, n_models: int) -> FloatArray:
        if self.weights is None:
            return np.ones(n_models)
        return check_weights(self.weights, n_models)

    def _fit(self, P: Proba, y: Labels, mask: Mask) -> None:
        self._member_weights(P.shape[1])  # fail at fit, not mid-stream, on bad weights

    def _pool(self, P: Proba, w_norm: FloatArray) -> FloatArray:
        return _log_pool(P, w_norm)

    def _member_score(self, P: Proba) -> FloatArray:
        return clipped_log_odds(P)
