"""Forward-stagewise additive combination of member log-odds (binary)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from scipy.special import expit, logit

from stream_ensemble.core.combiners._base import (
    Combiner,
    CombinerName,
    FloatArray,
    Link,
    LogisticLink,
    clipped_log_odds,
    empty_rows,
)
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Proba

_NEWTON_ITERATIONS = 60
_STEP_TOL = 1e-10


def _logistic_loss(F: FloatArray, y: FloatArray) -> FloatArray:
    """Mean log loss of log-odds ``F`` (n,) or (n, k) against ``y`` in {0, 1}; per column."""
    yy = y if F.ndim == 1 else y[:, None]
    return np.asarray((np.logaddexp(0.0, F) - yy * F).mean(axis=0), dtype=np.float64)


def _line_search(F: FloatArray, H: FloatArray, y: FloatArray, bound: float) -> FloatArray:
    """Exact 1-D minimiser of ``loss(F + a H[:, k])`` over ``a in [-bound, bound]`` per column.

    Safeguarded Newton (bisection when Newton leaves the bracket), vectorised over columns:
    the loss is convex in ``a`` so its derivative is monotone and the bracket shrinks.
    """
    k = H.shape[1]
    lo, hi, a = np.full(k, -bound), np.full(k, bound), np.zeros(k)
    active = np.arange(k)  # columns still moving; converged ones drop out of the work
    for _ in range(_NEWTON_ITERATIONS):
        Ha, aa = H[:, active], a[active]
        s = expit(F[:, None] + aa * Ha)
        r = s - y[:, None]
        grad = (r * Ha).mean(axis=0)
        curv = (s * (1.0 - s) * Ha * Ha).mean(axis=0)
        up = grad > 0
        hi[active] = np.where(up, aa, hi[active])
        lo[active] = np.where(up, lo[active], aa)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = aa - grad / curv
        inside = np.isfinite(newton) & (newton >= lo[active]) & (newton <= hi[active])
        nxt = np.where(inside, newton, 0.5 * (lo[active] + hi[active]))
        a[active] = nxt
        moving = (np.abs(nxt - aa) > _STEP_TOL * (1.0 + np.abs(aa))) & (grad != 0)
        active = active[moving]
        if active.size == 0:
            break
    # A column that is zero everywhere (member never present) cannot help.
    return np.where(np.any(H != 0, axis=0), a, 0.0)


class Boosting(Combiner):
    """Forward-stagewise additive modelling over held-out member log-odds (binary only).

    Model: ``F(x) = b + sum_t alpha_t h_{j_t}(x)`` with ``h_j`` member j's log-odds from
    probabilities clipped to ``[1e-6, 1 - 1e-6]``, and ``p = sigmoid(F)``.

    Algorithm (``fit``, on held-out predictions only)
    -------------------------------------------------
    1. ``F_0 = b = logit(mean(y))``; candidates are the member columns ``h_1..h_m`` plus a
       constant column 1 (so the intercept can move). During fit an absent member's ``h`` is 0.
    2. For stage ``t = 1..n_stages``:

       a. for every candidate k, find ``a_k = argmin_a L(F_{t-1} + a h_k)`` over
          ``|a| <= max_alpha`` (L = mean logistic loss; exact safeguarded Newton line search);
       b. pick ``k* = argmin_k L(F_{t-1} + a_k h_k)`` (the largest loss reduction);
       c. shrink: ``alpha_t = learning_rate * a_{k*}``; ``F_t = F_{t-1} + alpha_t h_{k*}``;
       d. stop before applying the stage if ``L(F_{t-1}) - L(F_t) < tol``.

       Convexity makes every applied stage lower the training loss (``train_loss_`` is
       strictly decreasing). A member may be picked many times; its alpha accumulates into
       ``alpha_[j]``, the intercept's into ``intercept_``.

    Predict: ``F = intercept_ + c(x) sum_{j present} alpha_j h_j(x)`` where
    ``c(x) = sum_j |alpha_j| / sum_{j present} |alpha_j|`` rescales the remaining members'
    alphas so that their total magnitude is preserved when some are missing (``c = 1`` when
    all are present; ``F = intercept_`` if only zero-alpha members are present). Rows with no
    member at all get the fitted class prior.

    Contributions (log-odds space): baseline ``intercept_``, member j adds
    ``c(x) alpha_j h_j(x)``; the link is the sigmoid.

    Parameters
    ----------
    n_stages : int, default=50
        Maximum number of stages M.
    learning_rate : float, default=0.5
        Shrinkage in (0, 1].
    tol : float, default=1e-6
        Minimum training-loss improvement for a stage to be kept.
    max_alpha : float, default=10.0
        Bound of the line search.

    Attributes
    ----------
    alpha_ : ndarray of shape (n_models,)
        Accumulated member coefficients.
    intercept_ : float
    stage_members_ : ndarray of int, shape (n_stages_,)
        Member picked at each stage (-1 for the intercept).
    stage_alphas_ : ndarray of shape (n_stages_,)
    train_loss_ : ndarray of shape (n_stages_ + 1,)
        Training loss before the first and after each stage.
    """

    name: ClassVar[CombinerName] = CombinerName.BOOSTING
    space: ClassVar[str] = "log_odds"
    binary_only: ClassVar[bool] = True

    def __init__(self, n_stages: int = 50, learning_rate: float = 0.5, tol: float = 1e-6,
                 max_alpha: float = 10.0) -> None:
        self.n_stages = n_stages
        self.learning_rate = learning_rate
        self.tol = tol
        self.max_alpha = max_alpha

    def _check_params(self) -> None:
        if not isinstance(self.n_stages, Integral) or self.n_stages < 1:
            raise ConfigError(f"n_stages must be a positive int, got {self.n_stages!r}")
        if not isinstance(self.learning_rate, Real) or not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if not isinstance(self.tol, Real) or self.tol < 0:
            raise ConfigError(f"tol must be >= 0, got {self.tol!r}")
        if not isinstance(self.max_alpha, Real) or not self.max_alpha > 0:
            raise ConfigError(f"max_alpha must be > 0, got {self.max_alpha!r}")

    def _fit(self, P: Proba, y: Labels, mask: Mask) -> None:
        self._check_params()
        m = P.shape[1]
        yf = y.astype(np.float64)
        cand = np.column_stack([clipped_log_odds(P) * mask, np.ones(P.shape[0])])
        intercept = float(logit(self.class_prior_[1]))
        F = np.full(P.shape[0], intercept)
        alpha = np.zeros(m)
        picks: list[int] = []
        steps: list[float] = []
        losses = [float(_logistic_loss(F, yf))]
        for _ in range(int(self.n_stages)):
            a = _line_search(F, cand, yf, float(self.max_alpha))
            k = int(np.argmin(_logistic_loss(F[:, None] + a * cand, yf)))
            step = float(self.learning_rate) * float(a[k])
            F_next = F + step * cand[:, k]
            loss = float(_logistic_loss(F_next, yf))
            if losses[-1] - loss < self.tol:
                break
            F = F_next
            losses.append(loss)
            picks.append(k if k < m else -1)
            steps.append(step)
            if k < m:
                alpha[k] += step
            else:
                intercept += step
        self.alpha_ = alpha
        self.intercept_ = intercept
        self.stage_members_ = np.asarray(picks, dtype=np.int64)
        self.stage_alphas_ = np.asarray(steps, dtype=np.float64)
        self.train_loss_ = np.asarray(losses, dtype=np.float64)
        self.n_stages_ = len(picks)

    def _terms(self, P: Proba, mask: Mask) -> FloatArray:
        """Per-member log-odds terms after the missing-member rescale, shape (n, m)."""
        magnitude = np.abs(self.alpha_)
        present_total = mask @ magnitude
        scale = np.divide(magnitude.sum(), present_total, out=np.zeros(mask.shape[0]),
                          where=present_total > 0)
        return np.asarray(scale[:, None] * self.alpha_ * clipped_log_odds(P) * mask)

    def _combine(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        p1 = expit(self.intercept_ + self._terms(P, mask).sum(axis=1))
        return np.column_stack([1.0 - p1, p1]).astype(np.float64), empty_rows(mask)

    def _decompose(self, P: Proba, mask: Mask) -> tuple[FloatArray, FloatArray, Link, Mask]:
        baseline = np.full(P.shape[0], self.intercept_, dtype=np.float64)
        return baseline, self._terms(P, mask), LogisticLink(), empty_rows(mask)

    def _member_importance(self, n_models: int) -> FloatArray:
        return np.asarray(np.abs(self.alpha_), dtype=np.float64)
