"""Distillation: one fast student fit to the ensemble's out-of-fold probabilities.

Protocol (the same rows as :func:`~stream_ensemble.core.training.builder.build`, nothing from
the test part):

1. **Soft targets** (:func:`teacher_oof`): the teacher's served probabilities -- strategy over
   its required members, then its calibrator -- on the members' *out-of-fold* predictions of
   the ``fit`` rows. A member that memorised its training rows (1-NN, deep trees) would give
   near-0/1 targets on them; OOF targets are what the ensemble says about rows it never saw.
2. **Student** (:func:`fit_student`): a LightGBM or HistGradientBoosting classifier fit on the
   ``fit`` rows to those soft targets. Each row is repeated once per class with weight = the
   teacher's probability of that class (copies below :data:`MIN_WEIGHT` are dropped), so the
   weighted log loss the booster minimises is the cross-entropy to the teacher. Early stopping
   uses a stratified share of the *original* rows (with their copies), never a row split
   from its own copies.
3. **Calibration**: on the ``calibration`` part with the true labels (rows neither the teacher
   nor the student trained on): :class:`EnsembleCalibrator` for two classes, one temperature
   for K. The split-conformal sets served with the student are fit on the same rows' calibrated
   probabilities (a monotone map of at most two parameters unless there are >= 1,000 rows,
   so their scores stay close to exchangeable with new rows').
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from stream_ensemble.core.confidence.calibration import EnsembleCalibrator
from stream_ensemble.core.confidence.temperature import TemperatureCalibrator
from stream_ensemble.core.training.crossfit import calibrated as calibrate
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Matrix, Proba

FloatArray = npt.NDArray[np.float64]
__all__ = ["MIN_WEIGHT", "STOP_FRACTION", "STUDENTS", "Student", "calibrate", "fit_student", "kept_share",
           "soft_rows", "teacher_oof"]

#: Student families :func:`fit_student` knows.
STUDENTS = ("lightgbm", "hist_gb")
#: Soft-target copies lighter than this are dropped (they barely move the loss; K copies per row
#: would otherwise make a 10-class student train on 10x the rows).
MIN_WEIGHT = 1e-3
#: Share of the fit rows held out for the student's early stopping.
STOP_FRACTION = 0.15


@dataclass(frozen=True, eq=False)
class Student:
    """A fitted, calibrated student.

    Attributes
    ----------
    kind : str
        ``lightgbm`` or ``hist_gb``.
    estimator : classifier
        Fitted pool-member estimator (``predict_proba``, ``classes_ = 0..K-1``): a
        ``LightGBMMember`` or scikit-learn ``HistGradientBoostingClassifier``, so the registry
        and the worker serve it like any member.
    calibrator : EnsembleCalibrator or TemperatureCalibrator
        Fit on the calibration part.
    n_classes : int
    fit_seconds : float
        Wall time of the student fit (one thread).
    rounds : int
        Boosting rounds kept by early stopping.
    stop_cross_entropy : float
        Cross-entropy of the raw student to the teacher on the early-stopping rows (nats).
    """

    kind: str
    estimator: Any
    calibrator: EnsembleCalibrator | TemperatureCalibrator
    n_classes: int
    fit_seconds: float
    rounds: int
    stop_cross_entropy: float

    def raw_proba(self, X: Matrix) -> FloatArray:
        """Uncalibrated student probabilities, shape (n, n_classes)."""
        with threadpool_limits(1):
            return np.asarray(self.estimator.predict_proba(np.asarray(X, dtype=np.float64)), dtype=np.float64)

    def predict_proba(self, X: Matrix) -> FloatArray:
        """Calibrated student probabilities, shape (n, n_classes), as served."""
        return calibrate(self.calibrator, self.raw_proba(X))


def teacher_oof(strategy: Any, calibrator: EnsembleCalibrator | TemperatureCalibrator | None,
                P_oof: Proba, X_fit: Matrix) -> FloatArray:
    """The teacher's served probabilities on its out-of-fold member predictions.

    Parameters
    ----------
    strategy : EnsembleStrategy
        The teacher's fitted strategy.
    calibrator : EnsembleCalibrator, TemperatureCalibrator or None
        The teacher's calibrator.
    P_oof : ndarray of shape (n_fit, n_models, n_classes)
        Out-of-fold member probabilities; columns of members the strategy does not run may be NaN.
    X_fit : ndarray of shape (n_fit, n_features)
        Encoded rows (dynamic strategies need them).

    Returns
    -------
    ndarray of shape (n_fit, n_classes)
        Soft targets; rows sum to 1.

    Raises
    ------
    ConfigError
        A column the strategy needs is missing (NaN).
    """
    run = np.asarray(strategy.required_members(np.ones(P_oof.shape[1], dtype=bool)), dtype=bool)
    if np.isnan(P_oof[:, run]).any():
        raise ConfigError("out-of-fold predictions are missing for a member the teacher runs")
    avail = np.broadcast_to(run, P_oof.shape[:2]).copy()
    raw = strategy.predict_proba(np.where(avail[:, :, None], P_oof, np.nan), avail, np.asarray(X_fit, dtype=np.float64))
    soft = calibrate(calibrator, np.asarray(raw, dtype=np.float64))
    return np.asarray(soft / soft.sum(axis=1, keepdims=True), dtype=np.float64)


def soft_rows(X: Matrix, soft: FloatArray, min_weight: float = MIN_WEIGHT) -> tuple[FloatArray, Labels, FloatArray]:
    """Repeat each row once per class, weighted by its soft target (module docstring, step 2).

    Parameters
    ----------
    X : ndarray of shape (n, n_features)
    soft : ndarray of shape (n, n_classes)
        Target probabilities.
    min_weight : float
        Copies with a smaller weight are dropped.

    Returns
    -------
    X_rep : ndarray of shape (n_rep, n_features)
    y_rep : ndarray of int, shape (n_rep,)
        Class index of each copy.
    w_rep : ndarray of shape (n_rep,)
        Its weight.
    """
    rows, cls = np.nonzero(soft >= min_weight)
    return np.ascontiguousarray(np.asarray(X, dtype=np.float64)[rows]), cls.astype(np.int64), soft[rows, cls].astype(np.float64)


def _cross_entropy(p: FloatArray, soft: FloatArray) -> float:
    return float(-(soft * np.log(np.clip(p, 1e-15, 1.0))).sum(axis=1).mean())


def _estimator(kind: str, random_state: int) -> Any:
    if kind == "lightgbm":
        from stream_ensemble.core.members.boosters import LightGBMMember

        return LightGBMMember(random_state=random_state)
    if kind == "hist_gb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        # Early stopping on the explicit stop rows passed to fit (X_val), not an inner split.
        return HistGradientBoostingClassifier(max_iter=500, learning_rate=0.1, early_stopping=True,
                                              n_iter_no_change=20, random_state=random_state)
    raise ConfigError(f"unknown student {kind!r}; choose one of: {', '.join(STUDENTS)}")


def fit_student(
    kind: str,
    X_fit: Matrix,
    soft: FloatArray,
    X_cal: Matrix,
    y_cal: Labels,
    *,
    calibration: str = "auto",
    random_state: int = 0,
) -> Student:
    """Fit a student to soft targets and calibrate it (module docstring, steps 2-3).

    Parameters
    ----------
    kind : {"lightgbm", "hist_gb"}
    X_fit : ndarray of shape (n_fit, n_features)
    soft : ndarray of shape (n_fit, n_classes)
        The teacher's out-of-fold probabilities (:func:`teacher_oof`).
    X_cal : ndarray of shape (n_cal, n_features)
        Held-out rows for the calibrator.
    y_cal : ndarray of int, shape (n_cal,)
    calibration : {"auto", "platt", "isotonic", "none"}
        Binary map (K classes always get a temperature).
    random_state : int

    Returns
    -------
    Student

    Raises
    ------
    ConfigError
        Unknown ``kind``, bad shapes, or targets that are not probabilities.
    """
    X = np.asarray(X_fit, dtype=np.float64)
    S = np.asarray(soft, dtype=np.float64)
    if X.ndim != 2 or S.ndim != 2 or S.shape[0] != X.shape[0] or S.shape[1] < 2:
        raise ConfigError(f"X_fit must be (n, d) and soft (n, k >= 2), got {X.shape} and {S.shape}")
    if not (np.isfinite(S).all() and (S >= 0).all() and np.allclose(S.sum(axis=1), 1.0, atol=1e-6)):
        raise ConfigError("soft targets must be finite probabilities whose rows sum to 1")
    est = _estimator(kind, random_state)
    k = S.shape[1]
    hard = S.argmax(axis=1)
    # Stratify the stop rows on the teacher's decision (a class the teacher never picks is not split on).
    strat = hard if np.bincount(hard, minlength=k).min() >= 2 else None
    fit_idx, stop_idx = train_test_split(np.arange(X.shape[0]), test_size=STOP_FRACTION,
                                         random_state=random_state, stratify=strat)
    Xr, yr, wr = soft_rows(X[fit_idx], S[fit_idx])
    Xs, ys, ws = soft_rows(X[stop_idx], S[stop_idx])
    if np.unique(yr).size != k:
        raise ConfigError(f"the teacher gives some class less than {MIN_WEIGHT} on every row; cannot learn {k} classes")
    t0 = time.perf_counter()
    with threadpool_limits(1):
        if kind == "lightgbm":
            est.fit(Xr, yr, sample_weight=wr, stop_set=(Xs, ys, ws))
            rounds = int(est.best_iteration_)
        else:
            est.fit(Xr, yr, sample_weight=wr, X_val=Xs, y_val=ys, sample_weight_val=ws)
            rounds = int(est.n_iter_)
    seconds = time.perf_counter() - t0
    student_stop = np.asarray(est.predict_proba(X[stop_idx]), dtype=np.float64)
    raw_cal = np.asarray(est.predict_proba(np.asarray(X_cal, dtype=np.float64)), dtype=np.float64)
    yc = np.asarray(y_cal).astype(np.int64)
    cal: EnsembleCalibrator | TemperatureCalibrator
    if k == 2:
        cal = EnsembleCalibrator(method=calibration, random_state=random_state).fit(raw_cal[:, 1], yc)
    else:
        cal = TemperatureCalibrator().fit(raw_cal, yc)
    ce = _cross_entropy(student_stop, S[stop_idx])
    return Student(kind=kind, estimator=est, calibrator=cal, n_classes=k, fit_seconds=seconds,
                   rounds=rounds, stop_cross_entropy=ce if math.isfinite(ce) else math.nan)


def kept_share(ll_best_single: float, ll_teacher: float, ll_student: float) -> float:
    """Share of the teacher's log-loss gain over the best single member that the student keeps.

    ``(ll_best_single - ll_student) / (ll_best_single - ll_teacher)``: 1 = all of it, 0 = no
    better than the best single member, > 1 = better than the teacher. NaN when the teacher
    has no gain to keep (``ll_teacher >= ll_best_single``).

    >>> round(kept_share(0.30, 0.20, 0.21), 3)
    0.9
    >>> kept_share(0.30, 0.31, 0.25)
    nan
    """
    gain = ll_best_single - ll_teacher
    if not (math.isfinite(gain) and gain > 0 and math.isfinite(ll_student)):
        return math.nan
    return (ll_best_single - ll_student) / gain
