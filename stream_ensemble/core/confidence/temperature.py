"""Temperature scaling: the K-class calibrator (K > 2).

The binary calibrator (:mod:`stream_ensemble.core.confidence.calibration`) maps the positive-class
probability; with K > 2 classes a per-class map would need renormalising and breaks the ranking
between classes. Temperature scaling keeps the ranking: ``q = softmax(log(p) / T)`` with one
scalar ``T > 0`` fit by minimising log loss on held-out rows (Guo et al., *On Calibration of
Modern Neural Networks*, 2017). ``T > 1`` softens an over-confident ensemble, ``T < 1``
sharpens an under-confident one (averaging members typically is under-confident). The same
protocol as the binary calibrator applies: fit only on rows no member or combiner was fit on.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.errors import CombinerError

FloatArray = npt.NDArray[np.float64]

#: Probabilities are floored here before the logarithm (a member's hard 0 stays finite).
EPS = 1e-12
#: Search range of ``log T``: T in [e^-3, e^3] ~ [0.05, 20].
LOG_T_BOUNDS = (-3.0, 3.0)
#: Calibrated outputs are clipped to [CLIP, 1] and renormalised so log loss stays finite.
CLIP = 1e-6


def _scaled(logp: FloatArray, temperature: float) -> FloatArray:
    """``log softmax(logp / T)``, shape as ``logp``."""
    return np.asarray(log_softmax(logp / temperature, axis=1), dtype=np.float64)


def _log_proba(p: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise CombinerError(f"temperature scaling needs (n, n_classes) probabilities, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise CombinerError("temperature scaling: probabilities must be finite")
    return np.log(np.clip(arr, EPS, 1.0))


class TemperatureCalibrator(BaseEstimator):  # type: ignore[misc]
    """One temperature for all K classes, fit on held-out rows.

    Attributes
    ----------
    temperature_ : float
        Fitted ``T``.
    log_loss_before_, log_loss_after_ : float
        Log loss of the fit rows before and after scaling (``after <= before``: ``T = 1`` is
        inside the search range).
    multiclass : bool
        Always True: :meth:`transform` takes and returns ``(n, n_classes)`` matrices (the binary
        calibrator takes ``(n,)`` positive-class probabilities).
    """

    multiclass = True

    def fit(self, p: npt.ArrayLike, y: npt.ArrayLike) -> TemperatureCalibrator:
        """Fit ``T`` by minimising log loss.

        Parameters
        ----------
        p : array-like of shape (n, n_classes)
            Ensemble probabilities on held-out rows.
        y : array-like of int, shape (n,)
            Class indices in ``[0, n_classes)``.

        Returns
        -------
        TemperatureCalibrator
            ``self``.

        Raises
        ------
        CombinerError
            Bad shapes, non-finite probabilities or labels out of range.
        """
        logp = _log_proba(p)
        labels = np.asarray(y).astype(np.int64).ravel()
        if labels.shape[0] != logp.shape[0] or logp.shape[0] == 0:
            raise CombinerError(f"{labels.shape[0]} labels for {logp.shape[0]} rows")
        if labels.min() < 0 or labels.max() >= logp.shape[1]:
            raise CombinerError(f"labels must be in [0, {logp.shape[1]})")
        rows = np.arange(labels.shape[0])

        def loss(log_t: float) -> float:
            return float(-_scaled(logp, float(np.exp(log_t)))[rows, labels].mean())

        res = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded")
        before = loss(0.0)
        best = float(res.x) if float(res.fun) < before else 0.0
        self.temperature_ = float(np.exp(best))
        self.log_loss_before_ = before
        self.log_loss_after_ = min(float(res.fun), before)
        self.n_classes_ = int(logp.shape[1])
        return self

    def transform(self, p: npt.ArrayLike, clip: bool = True) -> FloatArray:
        """Calibrated class probabilities.

        Parameters
        ----------
        p : array-like of shape (n, n_classes)
        clip : bool, default=True
            Clip to ``[CLIP, 1]`` and renormalise (served probabilities); ``False`` keeps the
            exact values for conformal scores (clipping creates ties).

        Returns
        -------
        ndarray of shape (n, n_classes)
            Rows sum to 1.
        """
        check_is_fitted(self)
        logp = _log_proba(p)
        if logp.shape[1] != self.n_classes_:
            raise CombinerError(f"fit on {self.n_classes_} classes, got {logp.shape[1]}")
        q = np.exp(_scaled(logp, self.temperature_))
        if clip:
            q = np.clip(q, CLIP, 1.0)
            q /= q.sum(axis=1, keepdims=True)
        return q
