"""Voting and averaging estimators: thin sklearn-style wrappers of the pure rules.

The pure functions (:func:`soft_vote`, :func:`hard_vote`, :func:`geometric_mean`) live in
:mod:`stream_ensemble.core.combiners.rules` and are re-exported here. All rules renormalise
over the members present in each row. A row with no present member (or whose present members
all carry zero weight) gets the prior: uniform for the pure functions and for unfitted
estimators, the class frequencies of ``y`` once an estimator has been fit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax

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
)
from stream_ensemble.core.combiners.rules import (
    check_weights,
    geometric_mean,
    hard_vote,
    log_linear_pool,
    soft_vote,
    top_class,
    vote_fractions,
    weighted_average,
)
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Proba

__all__ = ["GeometricMean", "HardVoting", "SoftVoting", "Weighted", "check_weights", "geometric_mean",
           "hard_vote", "soft_vote"]


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
        return weighted_average(P, w_norm)

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
        return vote_fractions(P, w_norm)

    def _member_score(self, P: Proba) -> FloatArray:
        return np.asarray(top_class(P) == 1, dtype=np.float64)


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
        return log_linear_pool(P, w_norm)

    def _member_score(self, P: Proba) -> FloatArray:
        return clipped_log_odds(P)
