"""Sampling noise of the accuracy benchmark's per-dataset goals.

A goal stated as "within ±2 points" or "no worse than the baseline" is judged on a few hundred
test rows on the small datasets, where the test figures themselves carry a standard error of
the same size. These helpers give each checked figure its standard error so that the summary
can say whether a miss is beyond the noise of the rows it was measured on (and still list every
miss of the plain tolerance, so nothing is hidden):

* paired log-loss gap of two methods on the same test rows (:func:`paired_loss_gap`);
* paired bootstrap gap of two selective accuracies (:func:`selective_gap`);
* conformal coverage: binomial on the test rows plus the spread of a threshold fit on
  ``n_cal`` rows (:func:`coverage_se`; its exact two-sided p-value, :func:`coverage_pvalue`);
* the mean over independent splits (:func:`mean_se`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from stream_ensemble.core.evaluation import selective_accuracy

FloatArray = npt.NDArray[np.float64]
#: Two-sided 95% normal quantile: a goal's figure is "beyond noise" when it misses by more than
#: this many standard errors. Per check, not corrected for the number of checks (strict side).
Z_NOISE = 1.96
#: Bootstrap resamples of the selective-accuracy gap.
N_BOOTSTRAP = 200
#: Monte Carlo draws of :func:`coverage_pvalue`.
N_COVERAGE_DRAWS = 100_000


def _row_log_loss(p: npt.ArrayLike, y: npt.NDArray[np.int64]) -> FloatArray:
    q = np.asarray(p, dtype=np.float64)
    if q.ndim == 1:
        q = np.column_stack([1.0 - q, q])
    return np.asarray(-np.log(np.clip(q[np.arange(y.size), y], 1e-15, 1.0)))


def paired_loss_gap(p_a: npt.ArrayLike, p_b: npt.ArrayLike, y: npt.NDArray[np.int64]) -> tuple[float, float]:
    """Mean and standard error of the per-row log-loss difference ``a - b`` on the same rows.

    Parameters
    ----------
    p_a, p_b : array-like of shape (n, n_classes) or (n,)
        Class probabilities (or positive-class probability) of two methods.
    y : ndarray of int, shape (n,)

    Returns
    -------
    (float, float)
        Mean gap (positive: ``a`` is worse) and its SE (NaN below two rows).
    """
    d = _row_log_loss(p_a, y) - _row_log_loss(p_b, y)
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return float(d.mean()), se


def selective_gap(conf_a: FloatArray, correct_a: npt.NDArray[np.bool_], conf_b: FloatArray,
                  correct_b: npt.NDArray[np.bool_], coverage: float, random_state: int = 0) -> tuple[float, float]:
    """Selective accuracy of ``a`` minus ``b`` at ``coverage``, with its paired bootstrap SE.

    Parameters
    ----------
    conf_a, conf_b : ndarray of shape (n,)
        Confidence of each method on the same rows.
    correct_a, correct_b : ndarray of bool, shape (n,)
        Whether each method's decision was right.
    coverage : float
        Share of rows kept (most confident first).
    random_state : int, default=0

    Returns
    -------
    (float, float)
        Gap and the standard deviation of the gap over row resamples.
    """
    gap = selective_accuracy(conf_a, correct_a, coverage) - selective_accuracy(conf_b, correct_b, coverage)
    rng = np.random.default_rng(random_state)
    n = np.asarray(conf_a).size
    boot = []
    for _ in range(N_BOOTSTRAP):
        i = rng.integers(0, n, n)
        boot.append(selective_accuracy(conf_a[i], correct_a[i], coverage)
                    - selective_accuracy(conf_b[i], correct_b[i], coverage))
    finite = [b for b in boot if math.isfinite(b)]
    return float(gap), float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


def coverage_se(alpha: float, n_test: int, n_cal: int, splits: int) -> float:
    """Standard error of the mean test coverage of an exact conformal predictor over ``splits``.

    Binomial variance of the coverage on ``n_test`` rows plus that of the realised coverage of
    a threshold fit on ``n_cal`` rows (Beta, variance ~ alpha (1 - alpha) / (n_cal + 1)).

    Parameters
    ----------
    alpha : float
    n_test, n_cal : int
        Rows per split.
    splits : int

    Returns
    -------
    float
    """
    inv = 1.0 / max(n_test, 1) + 1.0 / max(n_cal + 1, 1)
    return math.sqrt(alpha * (1 - alpha) * inv / max(splits, 1))


def coverage_pvalue(observed: float, alpha: float, n_test: int, n_cal: int, splits: int,
                    draws: int = N_COVERAGE_DRAWS, random_state: int = 0) -> float:
    """Two-sided p-value of a mean test coverage under an exact conformal predictor.

    The normal approximation behind :func:`coverage_se` is too thin-tailed on a few dozen rows
    (at ``alpha=0.05`` the coverage of 40 test rows is skewed toward its lower end), so the
    check compares against the model's own distribution, drawn by Monte Carlo: per split, the
    realised coverage of the threshold ``C ~ Beta((n_cal + 1)(1 - alpha), (n_cal + 1) alpha)``
    (mean ``1 - alpha``, variance ``alpha (1 - alpha) / (n_cal + 2)``), then ``Binomial(n_test,
    C)`` hits; the mean over ``splits``.

    Parameters
    ----------
    observed : float
        Mean test coverage over the splits.
    alpha : float
    n_test, n_cal : int
        Rows per split (of one class, for a Mondrian class check).
    splits : int
    draws : int, default=N_COVERAGE_DRAWS
    random_state : int, default=0

    Returns
    -------
    float
        ``2 min(P(X <= observed), P(X >= observed))``, capped at 1 (ties count on both sides).
    """
    rng = np.random.default_rng(random_state)
    n_t, n_c, k = max(int(n_test), 1), max(int(n_cal), 0), max(int(splits), 1)
    c = rng.beta((n_c + 1) * (1 - alpha), (n_c + 1) * alpha, size=(draws, k))
    x = rng.binomial(n_t, c).mean(axis=1) / n_t
    eps = 0.5 / (n_t * k)  # observed figures are multiples of 1 / (n_test splits), up to rounding
    lo, hi = float(np.mean(x <= observed + eps)), float(np.mean(x >= observed - eps))
    return min(1.0, 2.0 * min(lo, hi))


def mean_se(ses: Sequence[float]) -> float:
    """Standard error of the mean of independent per-split figures with these SEs (NaN if any is)."""
    arr = np.asarray(list(ses), dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        return math.nan
    return float(math.sqrt(float((arr ** 2).sum())) / arr.size)
