"""Split-conformal prediction sets over the ensemble's class probabilities.

Split protocol expected from the caller: three disjoint sets of rows.

1. Members (and a fitted combiner such as stacking) are trained on the TRAINING rows.
2. The calibrator (:class:`~stream_ensemble.core.confidence.calibration.EnsembleCalibrator`) is fitted on
   held-out rows.
3. :class:`ConformalClassifier` is fitted on a CALIBRATION split that none of the above saw,
   using the final (calibrated) probabilities for those rows.

The guarantee then holds for any new row exchangeable with the calibration split: the set
contains the true class with probability at least ``1 - alpha`` (marginally; per class with
``mondrian=True``). Reusing rows from steps 1-2 voids it (scores would be optimistic).

Nonconformity score ``s = 1 - p_true``. With ``n`` calibration scores sorted ascending, the
threshold is the ``k``-th smallest score, ``k = ceil((n + 1)(1 - alpha))`` -- the empirical
quantile at level ``ceil((n + 1)(1 - alpha)) / n``; when ``k > n`` the threshold is ``+inf``
(every class is in every set). A class ``c`` is in a row's set iff ``1 - p_c <= threshold``.

Randomized (smoothed) sets, ``randomized=True``: the deterministic rule above covers at least
``1 - alpha`` but up to ``1 / (n + 1)`` more, and more still when scores tie (a member that
outputs exactly 1.0 gives many calibration scores of exactly 0). The smoothed conformal p-value
of class ``c`` (Vovk, Gammerman & Shafer, *Algorithmic Learning in a Random World*, 2005, ch. 2)

    p_c = (#{i : s_i > s_c} + u * (#{i : s_i = s_c} + 1)) / (n + 1),    u ~ Uniform[0, 1),

puts ``c`` in the set iff ``p_c > alpha``; its coverage is exactly ``1 - alpha`` in expectation,
ties included. Rows and thresholds differ only in the tie-breaking ``u``: the worker derives it
from a hash of the event's encoded features (:func:`row_uniforms`), so a replayed event gets the
same set, and ``u`` is independent of the score for all practical purposes.

Empty sets: kept, as in the standard definition (no argmax is forced in). With small ``alpha``
sets rarely are empty; with large ``alpha`` an empty set says that no class is plausible at that
level, which is itself a signal. Report :func:`mean_set_size` and :func:`empty_rate` with
coverage.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.errors import CombinerError, ConfigError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)


def _conformal_threshold(sorted_scores: FloatArray, alpha: float) -> float:
    n = sorted_scores.shape[0]
    k = math.ceil((n + 1) * (1.0 - alpha) - 1e-12)
    if k > n or n == 0:
        return math.inf
    return float(sorted_scores[max(k, 1) - 1])


class ConformalClassifier(BaseEstimator):  # type: ignore[misc]
    """Split-conformal prediction sets with score ``1 - p_true`` (see the module docstring).

    Parameters
    ----------
    alpha : float, default=0.1
        Default miscoverage level in (0, 1); :meth:`predict_set` can override it without
        refitting.
    mondrian : bool, default=False
        Class-conditional (Mondrian) thresholds: class ``c``'s threshold is computed from the
        calibration rows whose label is ``c`` only, so coverage holds per class. A class with
        no calibration row gets threshold ``+inf`` (always included).
    randomized : bool, default=False
        Smoothed p-values with a tie-breaking uniform per row (module docstring): coverage
        exactly ``1 - alpha`` instead of at least. :meth:`predict_set` then needs ``u``.

    Attributes
    ----------
    n_classes_ : int
        Number of classes.
    scores_ : ndarray of shape (n_cal,)
        Sorted nonconformity scores of every calibration row.
    class_scores_ : list of ndarray
        Per class, the sorted scores of that class's calibration rows.

    Examples
    --------
    >>> import numpy as np
    >>> cal = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> cp = ConformalClassifier(alpha=0.25).fit(cal, np.array([0, 1, 0, 1]))
    >>> cp.threshold()
    array([0.4, 0.4])
    >>> cp.predict_set(np.array([[0.65, 0.35]])).tolist()
    [[True, False]]
    """

    def __init__(self, alpha: float = 0.1, mondrian: bool = False, randomized: bool = False) -> None:
        self.alpha = alpha
        self.mondrian = mondrian
        self.randomized = randomized

    def fit(self, proba_cal: npt.ArrayLike, y_cal: npt.ArrayLike) -> ConformalClassifier:
        """Store the calibration split's sorted nonconformity scores.

        Parameters
        ----------
        proba_cal : array-like of shape (n_cal, n_classes)
            Final probabilities on the calibration split (rows no earlier step was fit on).
        y_cal : array-like of shape (n_cal,)
            Integer labels in ``0..n_classes-1``.

        Returns
        -------
        ConformalClassifier
            ``self``.

        Raises
        ------
        ConfigError
            If ``alpha`` is outside (0, 1).
        CombinerError
            On bad shapes, NaN probabilities or labels out of range.
        """
        _check_alpha(self.alpha)
        proba = np.asarray(proba_cal, dtype=np.float64)
        labels = np.asarray(y_cal).astype(np.int64, copy=False).ravel()
        if proba.ndim != 2 or proba.shape[1] < 2 or labels.shape[0] != proba.shape[0]:
            raise CombinerError(f"proba {proba.shape} and labels {labels.shape} are inconsistent")
        if not np.all(np.isfinite(proba)):
            raise CombinerError("calibration probabilities contain NaN or inf")
        c = proba.shape[1]
        if labels.size and (labels.min() < 0 or labels.max() >= c):
            raise CombinerError(f"labels must be in 0..{c - 1}")
        scores = 1.0 - proba[np.arange(proba.shape[0]), labels]
        order = np.lexsort((scores, labels))
        bounds = np.searchsorted(labels[order], np.arange(c + 1))
        by_class = scores[order]
        self.n_classes_ = c
        self.scores_ = np.sort(scores)
        self.class_scores_ = [by_class[bounds[k] : bounds[k + 1]] for k in range(c)]
        return self

    def threshold(self, alpha: float | None = None) -> FloatArray:
        """Score threshold per class at level ``alpha``.

        Parameters
        ----------
        alpha : float, optional
            Miscoverage level; defaults to ``self.alpha``.

        Returns
        -------
        ndarray of shape (n_classes,)
            Per-class thresholds (all equal unless ``mondrian``); ``inf`` where the
            calibration split is too small for the level.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ConfigError
            If ``alpha`` is outside (0, 1).
        """
        check_is_fitted(self, "scores_")
        a = _check_alpha(self.alpha if alpha is None else alpha)
        if self.mondrian:
            return np.array([_conformal_threshold(s, a) for s in self.class_scores_])
        return np.full(self.n_classes_, _conformal_threshold(self.scores_, a))

    def tie_breaks(self, X: npt.ArrayLike) -> FloatArray | None:
        """The ``u`` :meth:`predict_set` takes for these rows: :func:`row_uniforms` of ``X``
        (shape (n,)) when ``randomized``, else ``None`` (no hashing on the serving path).

        Parameters
        ----------
        X : array-like of shape (n, d)
            The rows being scored (encoded features).
        """
        return row_uniforms(X) if getattr(self, "randomized", False) else None

    def predict_set(
        self, proba: npt.ArrayLike, alpha: float | None = None, u: npt.ArrayLike | None = None
    ) -> BoolArray:
        """Prediction sets: class ``c`` is in row ``i``'s set iff ``1 - proba[i, c] <= t_c``
        (or, when ``randomized``, iff its smoothed p-value exceeds ``alpha``).

        Parameters
        ----------
        proba : array-like of shape (n, n_classes)
            Final probabilities of the rows to predict.
        alpha : float, optional
            Miscoverage level; defaults to ``self.alpha``. No refit is needed.
        u : array-like of shape (n,), optional
            Tie-breaking uniforms in [0, 1), one per row; required when ``randomized``
            (e.g. :func:`row_uniforms` of the encoded rows), ignored otherwise.

        Returns
        -------
        ndarray of shape (n, n_classes), bool
            Set membership. A row may be empty (see the module docstring).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ConfigError
            If ``alpha`` is outside (0, 1).
        CombinerError
            If the number of classes differs from the calibration split.
        """
        check_is_fitted(self, "scores_")
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.n_classes_:
            raise CombinerError(f"expected (n, {self.n_classes_}) probabilities, got {p.shape}")
        if not getattr(self, "randomized", False):
            return np.asarray(1.0 - p <= self.threshold(alpha)[None, :], dtype=bool)
        a = _check_alpha(self.alpha if alpha is None else alpha)
        if u is None:
            raise CombinerError("randomized conformal sets need one tie-breaking uniform per row (u)")
        uu = np.asarray(u, dtype=np.float64).ravel()
        if uu.shape[0] != p.shape[0]:
            raise CombinerError(f"{uu.shape[0]} tie-breaking uniforms for {p.shape[0]} rows")
        scores = 1.0 - p
        out = np.empty(p.shape, dtype=bool)
        for c in range(self.n_classes_):
            cal = self.class_scores_[c] if self.mondrian else self.scores_
            n = cal.shape[0]
            right = np.searchsorted(cal, scores[:, c], side="right")
            left = np.searchsorted(cal, scores[:, c], side="left")
            pval = ((n - right) + uu * (right - left + 1)) / (n + 1)
            out[:, c] = pval > a
        return out


def row_uniforms(X: npt.ArrayLike) -> FloatArray:
    """A deterministic pseudo-uniform in [0, 1) per row, from the row's bytes.

    The tie-breaking ``u`` of randomized sets: the same encoded row always gets the same ``u``
    (a replayed event gets the same set), while distinct rows get values that behave as
    independent uniforms. Vectorised splitmix64 over the row's 64-bit words.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Encoded rows (any dtype; ``float64`` as the encoder produces).

    Returns
    -------
    ndarray of shape (n,)
        Values in [0, 1).
    """
    A = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    if A.ndim != 2:
        raise CombinerError(f"expected (n, d) rows, got shape {A.shape}")
    words = A.view(np.uint64)
    h = np.full(A.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = _splitmix64(h ^ words[:, j])
        h = _splitmix64(h)
    return np.asarray((h >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)))


def _check_sets(sets: npt.ArrayLike) -> BoolArray:
    s = np.asarray(sets, dtype=bool)
    if s.ndim != 2:
        raise CombinerError(f"prediction sets must be (n, n_classes), got {s.shape}")
    return s


def _hits(sets: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Whether each row's set holds its label ``(n,)``, and the labels ``(n,)``."""
    s = _check_sets(sets)
    labels = np.asarray(y).astype(np.int64, copy=False).ravel()
    if labels.shape[0] != s.shape[0]:
        raise CombinerError(f"{labels.shape[0]} labels for {s.shape[0]} sets")
    return s[np.arange(s.shape[0]), labels].astype(np.float64), labels


def coverage(sets: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Fraction of rows whose prediction set contains the true class.

    Parameters
    ----------
    sets : array-like of shape (n, n_classes), bool
        Prediction sets.
    y : array-like of shape (n,)
        Integer labels.

    Returns
    -------
    float
        Empirical coverage in [0, 1] (``nan`` for no rows).

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    hit, _ = _hits(sets, y)
    return float(hit.mean()) if hit.shape[0] else math.nan


def class_coverage(sets: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """Coverage among the rows of each true class (what Mondrian sets guarantee).

    Parameters
    ----------
    sets : array-like of shape (n, n_classes), bool
        Prediction sets.
    y : array-like of shape (n,)
        Integer labels.

    Returns
    -------
    ndarray of shape (n_classes,)
        Per-class coverage; ``nan`` for a class absent from ``y``.

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    hit, labels = _hits(sets, y)
    c = np.asarray(sets).shape[1]
    count = np.bincount(labels, minlength=c).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.bincount(labels, weights=hit, minlength=c) / count)


def mean_set_size(sets: npt.ArrayLike) -> float:
    """Mean number of classes per prediction set.

    Parameters
    ----------
    sets : array-like of shape (n, n_classes), bool
        Prediction sets.

    Returns
    -------
    float
        Mean set size (``nan`` for no rows).

    Raises
    ------
    CombinerError
        If ``sets`` is not 2-d.
    """
    s = _check_sets(sets)
    return float(s.sum(axis=1).mean()) if s.shape[0] else math.nan


def empty_rate(sets: npt.ArrayLike) -> float:
    """Fraction of rows with an empty prediction set.

    Parameters
    ----------
    sets : array-like of shape (n, n_classes), bool
        Prediction sets.

    Returns
    -------
    float
        Fraction in [0, 1] (``nan`` for no rows).

    Raises
    ------
    CombinerError
        If ``sets`` is not 2-d.
    """
    s = _check_sets(sets)
    return float((~s.any(axis=1)).mean()) if s.shape[0] else math.nan
