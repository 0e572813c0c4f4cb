"""Comparing a challenger with the champion from running sums, safe to look at any time.

Everything is computed from :class:`MetricSums` (count, sum, sum of squares of a per-outcome
metric such as 1{correct}, log loss or Brier score), which streams merge by addition; every
function broadcasts, so one call evaluates a whole array of experiments or looks.

Two designs:

- **split** — the arms scored different events: independent samples, the difference of means
  has variance ``var_c / n_c + var_0 / n_0`` (never less than with the pooled within-arm
  variance, ``var_p (1 / n_c + 1 / n_0)``: conservative while an arm's variance is still 0);
- **shadow** — both arms scored the same events: paired, the caller keeps the sums of the
  per-event difference ``metric_challenger - metric_champion`` and its variance is
  ``var_d / n``.

Two tests of "difference = 0":

- **fixed horizon** — the z interval and two-sided p-value. Valid only when read once, at a
  sample size fixed in advance: reading it after every batch and stopping at the first
  p < alpha inflates false positives far above alpha (``bench ab-sim`` measures how much).
- **anytime valid** — the normal-mixture sequential probability ratio test (mSPRT): with the
  difference's estimate ``d``, its variance ``V`` and a normal mixture of variance ``tau^2``
  over the true difference, the likelihood ratio is
  ``L = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))``. ``1 / L`` is a p-value at
  one look and its running minimum over looks is a sequential p-value: by Ville's inequality
  the chance that it ever drops below alpha under no difference is at most alpha, however often
  it is read. The matching confidence sequence is
  ``d ± sqrt(V (V + tau^2) / tau^2 * (2 ln(1/alpha) + ln((V + tau^2) / V)))``.
  Variances are plug-in estimates (the test is asymptotically, not exactly, valid).
- **one-sided anytime valid** — the same test with the mixture restricted to one side: a
  half-normal of scale ``tau`` over differences below 0 (or above), so
  ``L_below = 2 L Phi(-d tau / sqrt(V (V + tau^2)))``. Each component ``exp(theta S / s^2 - n
  theta^2 / (2 s^2))`` with ``theta < 0`` is a nonnegative supermartingale whenever the true
  difference is >= 0, so the running minimum of ``1 / L_below`` is a sequential p-value for the
  *composite* null "not below 0". The guardrail's question ("is the challenger worse?") is one
  of these: all of alpha goes to the side that stops an arm.

``tau`` is set as ``mixture_scale`` standard deviations of one observation of the difference,
so it needs no knowledge of the metric's units: the test is most sensitive to effects of about
that size (smaller is more patient, larger catches large effects sooner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr, ndtr, ndtri

Array = npt.NDArray[np.float64]
#: Default mixture scale: effects of ~0.05 standard deviations (2 points of accuracy near 80%).
DEFAULT_MIXTURE_SCALE = 0.05


@dataclass(frozen=True)
class MetricSums:
    """Running sums of a per-outcome metric; fields broadcast (scalars or equal-shape arrays)."""

    n: Any
    total: Any
    total_sq: Any

    @classmethod
    def of(cls, values: npt.ArrayLike, axis: int = -1) -> MetricSums:
        """Sums of ``values`` along ``axis`` (shape (..., n) -> fields of shape (...))."""
        v = np.asarray(values, dtype=np.float64)
        total = v.sum(axis=axis)
        return cls(n=np.full(np.shape(total), float(v.shape[axis])), total=total, total_sq=(v * v).sum(axis=axis))

    @classmethod
    def zero(cls) -> MetricSums:
        return cls(n=0.0, total=0.0, total_sq=0.0)

    def __add__(self, other: MetricSums) -> MetricSums:
        return MetricSums(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    def mean(self) -> Array:
        """Mean of the metric (nan when n = 0)."""
        n = np.asarray(self.n, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.asarray(self.total, dtype=np.float64) / n, np.nan)

    def variance(self) -> Array:
        """Unbiased sample variance of one observation (nan when n < 2; never negative)."""
        n = np.asarray(self.n, dtype=np.float64)
        total = np.asarray(self.total, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ss = np.asarray(self.total_sq, dtype=np.float64) - total * total / n
            return np.where(n > 1, np.maximum(ss, 0.0) / (n - 1), np.nan)

    def interval(self, alpha: float = 0.05) -> tuple[Array, Array]:
        """Normal ``1 - alpha`` interval of the mean: (low, high)."""
        half = _z(alpha) * np.sqrt(self.variance() / np.asarray(self.n, dtype=np.float64))
        return self.mean() - half, self.mean() + half

    def to_dict(self) -> dict[str, Any]:
        return {"n": _plain(self.n), "total": _plain(self.total), "total_sq": _plain(self.total_sq)}


@dataclass(frozen=True)
class Comparison:
    """challenger − champion at one look; array fields when the inputs were arrays.

    ``p_value`` / ``low`` / ``high`` are the fixed-horizon test; ``mixture_p`` (``1 / L``, not
    yet minimised over looks) and ``cs_low`` / ``cs_high`` the anytime-valid ones;
    ``mixture_p_below`` / ``mixture_p_above`` the one-sided anytime-valid per-look p-values
    (evidence that the difference is < 0 / > 0).
    """

    difference: Array
    std_error: Array
    low: Array
    high: Array
    p_value: Array
    mixture_p: Array
    cs_low: Array
    cs_high: Array
    mixture_p_below: Array
    mixture_p_above: Array

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.__dict__.items()}


def compare(
    challenger: MetricSums,
    champion: MetricSums,
    *,
    paired_difference: MetricSums | None = None,
    alpha: float = 0.05,
    mixture_scale: float = DEFAULT_MIXTURE_SCALE,
) -> Comparison:
    """Fixed-horizon and anytime-valid comparison of ``challenger - champion``.

    Parameters
    ----------
    challenger, champion : MetricSums
        Each arm's sums. For a split experiment these are all that is needed.
    paired_difference : MetricSums, optional
        Shadow experiments: sums of ``metric_challenger - metric_champion`` over the events both
        arms scored. When given, the test is paired and the arm sums are not used.
    alpha : float
        Level of the intervals and the confidence sequence.
    mixture_scale : float
        ``tau`` in standard deviations of one observation of the difference (> 0).

    Returns
    -------
    Comparison
        Fields broadcast to the inputs' common shape; no data (n < 2 or zero variance) gives a
        difference of nan, p-values of 1 and infinite bounds.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not mixture_scale > 0:
        raise ValueError(f"mixture_scale must be > 0, got {mixture_scale}")
    if paired_difference is not None:
        d = paired_difference.mean()
        unit_var = paired_difference.variance()
        var = unit_var / np.asarray(paired_difference.n, dtype=np.float64)
    else:
        d = challenger.mean() - champion.mean()
        vc, v0 = challenger.variance(), champion.variance()
        nc, n0 = np.asarray(challenger.n, dtype=np.float64), np.asarray(champion.n, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            # The larger of the unequal-variance (Welch) and the pooled within-arm variance: an
            # arm whose first outcomes were all right has a sample variance of 0, and Welch alone
            # then takes the difference for exact (a demo run's challenger, 100% right on its
            # first few dozen outcomes, "won" at sequential p 0.02 with the same accuracy).
            pooled = ((nc - 1) * vc + (n0 - 1) * v0) / (nc + n0 - 2)
            unit_var = np.fmax(vc + v0, 2 * pooled)  # one (challenger, champion) difference of independent draws
            var = np.fmax(vc / nc + v0 / n0, pooled * (1 / nc + 1 / n0))
    ok = np.isfinite(var) & (var > 0) & np.isfinite(d)
    var = np.where(ok, var, 1.0)
    d0 = np.where(ok, d, 0.0)
    se = np.sqrt(var)
    z = _z(alpha)
    p_fixed = 2.0 * ndtr(-np.abs(d0) / se)
    tau2 = mixture_scale**2 * np.where(ok, unit_var, 1.0)
    log_lr = 0.5 * np.log(var / (var + tau2)) + d0 * d0 * tau2 / (2.0 * var * (var + tau2))
    p_mix = np.exp(-np.maximum(log_lr, 0.0))  # min(1, 1 / L)
    # one-sided: 2 L Phi(-+ d tau / sqrt(V (V + tau^2))), in logs (Phi underflows far on the other side)
    w = d0 * np.sqrt(tau2 / (var * (var + tau2)))
    p_below = np.exp(-np.maximum(log_lr + np.log(2.0) + log_ndtr(-w), 0.0))
    p_above = np.exp(-np.maximum(log_lr + np.log(2.0) + log_ndtr(w), 0.0))
    radius = np.sqrt(var * (var + tau2) / tau2 * (2.0 * np.log(1.0 / alpha) + np.log((var + tau2) / var)))
    inf = np.inf
    return Comparison(
        difference=np.where(ok, d, np.nan), std_error=np.where(ok, se, np.nan),
        low=np.where(ok, d0 - z * se, -inf), high=np.where(ok, d0 + z * se, inf),
        p_value=np.where(ok, p_fixed, 1.0), mixture_p=np.where(ok, p_mix, 1.0),
        cs_low=np.where(ok, d0 - radius, -inf), cs_high=np.where(ok, d0 + radius, inf),
        mixture_p_below=np.where(ok, p_below, 1.0), mixture_p_above=np.where(ok, p_above, 1.0),
    )  # fmt: skip


def mixture_p_value(per_look: npt.ArrayLike, previous: float = 1.0, axis: int = -1) -> Array:
    """Sequential p-value: running minimum of the per-look ``mixture_p`` along ``axis``.

    ``previous`` is the value carried from earlier looks (1.0 at the start).
    """
    p = np.minimum(np.asarray(per_look, dtype=np.float64), previous)
    return np.minimum.accumulate(p, axis=axis)


def _z(alpha: float) -> float:
    return float(-ndtri(alpha / 2.0))


def _plain(x: Any) -> Any:
    a = np.asarray(x)
    if a.ndim == 0:
        v = float(a)
        return v if np.isfinite(v) else None
    return [None if not np.isfinite(v) else float(v) for v in a.ravel()]
