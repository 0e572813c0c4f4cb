"""Post-hoc calibration of the ensemble's positive-class probability.

Protocol: the calibrator is fitted on HELD-OUT predictions only -- ensemble probabilities for
rows that neither the members nor the combiner were trained on (a validation split, or
out-of-fold predictions). Fitting it on training rows learns the members' over-confidence on
data they memorised and makes calibration worse, not better. Conformal prediction sets
(:mod:`stream_ensemble.core.confidence.conformal`) need yet another disjoint split after this one.

Binary only: the input is the positive-class probability ``(n,)`` (a ``(n, 2)`` matrix is
accepted and its column 1 used). More than two classes raises :class:`CombinerError`; a
one-vs-rest extension would fit one calibrator per class and renormalise rows, which is not
implemented.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.core.evaluation import expected_calibration_error
from stream_ensemble.errors import CombinerError, ConfigError

FloatArray = npt.NDArray[np.float64]

#: Calibrated outputs are clipped to [CLIP, 1 - CLIP] so log loss stays finite.
CLIP = 1e-6


class CalibrationMethod(str, Enum):
    """Calibration maps. ``auto`` picks among the others by cross-validated log loss."""

    AUTO = "auto"
    PLATT = "platt"
    ISOTONIC = "isotonic"
    NONE = "none"


class _Map(Protocol):
    def fit(self, p: FloatArray, y: npt.NDArray[np.int64]) -> _Map: ...

    def __call__(self, p: FloatArray) -> FloatArray: ...


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, CLIP, 1.0 - CLIP)
    return np.log(q) - np.log1p(-q)


class _Identity:
    def fit(self, p: FloatArray, y: npt.NDArray[np.int64]) -> _Identity:
        return self

    def __call__(self, p: FloatArray) -> FloatArray:
        return p


class _Platt:
    """Logistic regression on ``logit(p)``: ``sigmoid(a * logit(p) + b)``."""

    def __init__(self) -> None:
        # Large C: two parameters on many rows need no shrinkage, and shrinking the slope
        # towards 0 would bias the map towards the base rate.
        self._lr = LogisticRegression(C=1e4, max_iter=1000)

    def fit(self, p: FloatArray, y: npt.NDArray[np.int64]) -> _Platt:
        self._lr.fit(_logit(p)[:, None], y)
        return self

    def __call__(self, p: FloatArray) -> FloatArray:
        z = self._lr.coef_[0, 0] * _logit(p) + self._lr.intercept_[0]
        return np.asarray(expit(z), dtype=np.float64)  # same values, no overflow warning


class _Isotonic:
    def __init__(self) -> None:
        self._iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")

    def fit(self, p: FloatArray, y: npt.NDArray[np.int64]) -> _Isotonic:
        self._iso.fit(p, y.astype(np.float64))
        return self

    def __call__(self, p: FloatArray) -> FloatArray:
        return np.asarray(self._iso.predict(p), dtype=np.float64)


_MAPS: dict[CalibrationMethod, Callable[[], _Map]] = {
    CalibrationMethod.NONE: _Identity,
    CalibrationMethod.PLATT: _Platt,
    CalibrationMethod.ISOTONIC: _Isotonic,
}

# Order of preference on tied CV scores: the simplest map wins.
_CANDIDATES = (CalibrationMethod.NONE, CalibrationMethod.PLATT, CalibrationMethod.ISOTONIC)


def _clipped_log_loss(p: FloatArray, y: npt.NDArray[np.int64]) -> float:
    q = np.clip(p, CLIP, 1.0 - CLIP)
    return float(-np.mean(np.where(y == 1, np.log(q), np.log1p(-q))))


def _positive_proba(p: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2:
        arr = arr[:, 1]
    if arr.ndim != 1:
        raise CombinerError(
            f"calibration is binary: expected (n,) or (n, 2) probabilities, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise CombinerError("probabilities contain NaN or inf")
    return arr


def parse_method(method: str | CalibrationMethod) -> CalibrationMethod:
    """Validate a calibration method name.

    Parameters
    ----------
    method : str or CalibrationMethod
        ``"auto"``, ``"platt"``, ``"isotonic"`` or ``"none"``.

    Returns
    -------
    CalibrationMethod
        The parsed method.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    try:
        return CalibrationMethod(method)
    except ValueError as exc:
        known = [m.value for m in CalibrationMethod]
        raise ConfigError(f"unknown calibration method {method!r}; known: {known}") from exc


class EnsembleCalibrator(BaseEstimator):  # type: ignore[misc]
    """Calibrate the ensemble's positive-class probability (binary).

    ``platt`` fits ``sigmoid(a * logit(p) + b)`` by logistic regression; ``isotonic`` fits a
    non-decreasing step map (``out_of_bounds="clip"``); ``none`` is the identity; ``auto``
    scores the three by stratified ``cv``-fold cross-validated log loss on the given held-out
    data and keeps the lowest (ties go to the simpler map, so ``none`` is kept unless a map
    improves on it by more than one standard error across folds without worsening the
    cross-validated ECE), then refits the winner on all of the data. Outputs are clipped to
    ``[1e-6, 1 - 1e-6]``.

    Parameters
    ----------
    method : {"auto", "platt", "isotonic", "none"}, default="auto"
        Calibration map.
    cv : int, default=5
        Folds for ``auto`` (lowered to the minority class count if that is smaller; with
        fewer than 2 rows of a class ``auto`` keeps ``none``).
    random_state : int, default=0
        Seed of the fold shuffle.
    isotonic_min_rows : int, default=1000
        ``auto`` considers isotonic only with at least this many rows. A step map fit on a
        few dozen rows can send a real positive to ~0 and blow up test log loss (seen on a
        70-row calibration half); scikit-learn likewise advises against isotonic with far
        fewer than 1,000 calibration samples.

    Attributes
    ----------
    method_ : CalibrationMethod
        The map in use (never ``auto``).
    cv_scores_ : dict of str to float
        Mean cross-validated log loss per candidate (empty unless ``method="auto"``).
    cv_ece_ : dict of str to float
        Mean cross-validated expected calibration error per candidate (``auto`` only);
        a map with a higher value than ``none`` is never chosen.
    map_ : object
        The fitted map.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 2000)
    >>> y = (rng.uniform(size=2000) < p).astype(int)
    >>> cal = EnsembleCalibrator(method="platt").fit(p, y)
    >>> cal.transform(np.array([0.5])).shape
    (1,)
    """

    def __init__(self, method: str = "auto", cv: int = 5, random_state: int = 0,
                 isotonic_min_rows: int = 1000) -> None:
        self.method = method
        self.cv = cv
        self.random_state = random_state
        self.isotonic_min_rows = isotonic_min_rows

    def fit(self, p: npt.ArrayLike, y: npt.ArrayLike) -> EnsembleCalibrator:
        """Fit the calibration map on held-out predictions.

        Parameters
        ----------
        p : array-like of shape (n,) or (n, 2)
            Ensemble positive-class probability on held-out rows (never rows the members or the
            combiner were trained on).
        y : array-like of shape (n,)
            Labels in {0, 1}.

        Returns
        -------
        EnsembleCalibrator
            ``self``.

        Raises
        ------
        ConfigError
            For an unknown ``method`` or ``cv < 2``.
        CombinerError
            For non-binary input, NaN probabilities, labels outside {0, 1} or a length
            mismatch.
        """
        method = parse_method(self.method)
        if self.cv < 2:
            raise ConfigError(f"cv must be >= 2, got {self.cv}")
        proba = _positive_proba(p)
        labels = np.asarray(y).astype(np.int64, copy=False).ravel()
        if labels.shape != proba.shape:
            raise CombinerError(f"{labels.shape[0]} labels for {proba.shape[0]} rows")
        if not np.isin(labels, (0, 1)).all():
            raise CombinerError("calibration is binary: labels must be 0 or 1")
        self.cv_scores_: dict[str, float] = {}
        if method is CalibrationMethod.AUTO:
            method = self._choose(proba, labels)
        if method is not CalibrationMethod.NONE and np.unique(labels).shape[0] < 2:
            raise CombinerError(f"{method.value} calibration needs both classes in y")
        self.method_ = method
        self.map_ = _MAPS[method]().fit(proba, labels)
        return self

    def _choose(self, p: FloatArray, y: npt.NDArray[np.int64]) -> CalibrationMethod:
        min_count = int(np.bincount(y, minlength=2).min())
        n_splits = min(self.cv, min_count)
        if n_splits < 2:
            self.cv_scores_ = {CalibrationMethod.NONE.value: _clipped_log_loss(p, y)}
            return CalibrationMethod.NONE
        candidates = [m for m in _CANDIDATES
                      if m is not CalibrationMethod.ISOTONIC or p.shape[0] >= self.isotonic_min_rows]
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        losses = {m: np.zeros(n_splits) for m in candidates}
        eces = {m: np.zeros(n_splits) for m in candidates}
        for k, (tr, te) in enumerate(folds.split(p[:, None], y)):
            for m in candidates:
                q = _MAPS[m]().fit(p[tr], y[tr])(p[te])
                losses[m][k] = _clipped_log_loss(q, y[te])
                eces[m][k] = expected_calibration_error(q, y[te])
        self.cv_scores_ = {m.value: float(v.mean()) for m, v in losses.items()}
        self.cv_ece_ = {m.value: float(v.mean()) for m, v in eces.items()}
        # A map replaces the identity only when it is reliably better: its fold-paired log-loss
        # gain exceeds one standard error (the "one-standard-error rule"), and its
        # cross-validated ECE is not above the identity's (sharpening alone is not calibration).
        # On a few hundred held-out rows a map that wins by noise hurts more than it helps.
        none = CalibrationMethod.NONE
        allowed = [none]
        for m in candidates:
            if m is none:
                continue
            gain = losses[none] - losses[m]
            se = float(gain.std(ddof=1) / np.sqrt(n_splits))
            if gain.mean() > se and self.cv_ece_[m.value] <= self.cv_ece_[none.value]:
                allowed.append(m)
        # min() keeps the first of equal scores, i.e. the simplest map in _CANDIDATES order.
        return min(allowed, key=lambda m: self.cv_scores_[m.value])

    def transform(self, p: npt.ArrayLike, clip: bool = True) -> FloatArray:
        """Calibrated positive-class probability.

        Parameters
        ----------
        p : array-like of shape (n,) or (n, 2)
            Ensemble positive-class probability.
        clip : bool, default=True
            Clip to ``[1e-6, 1 - 1e-6]``. Conformal scores use ``clip=False``: clipping ties
            every near-certain row at one value, and a quantile that lands on such a tie
            makes the sets over-cover (seen: 93% of the rows of a near-separable dataset).

        Returns
        -------
        ndarray of shape (n,)
            Calibrated probability, clipped to ``[1e-6, 1 - 1e-6]``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        CombinerError
            For non-binary or NaN input.
        """
        check_is_fitted(self, "map_")
        q = self.map_(_positive_proba(p))
        return np.clip(q, CLIP, 1.0 - CLIP) if clip else np.clip(q, 0.0, 1.0)

    def predict_proba(self, p: npt.ArrayLike) -> FloatArray:
        """Calibrated class probabilities ``[1 - q, q]``.

        Parameters
        ----------
        p : array-like of shape (n,) or (n, 2)
            Ensemble positive-class probability.

        Returns
        -------
        ndarray of shape (n, 2)
            Calibrated probabilities of classes 0 and 1.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        CombinerError
            For non-binary or NaN input.
        """
        check_is_fitted(self, "map_")
        q = self.transform(p)
        return np.column_stack([1.0 - q, q])
