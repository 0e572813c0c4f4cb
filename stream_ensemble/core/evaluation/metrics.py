"""Probability metrics: log loss, accuracy, ROC AUC, Brier and calibration error, vectorised.

They take ``p`` as either the positive-class probability ``(n,)`` (binary) or a full
probability matrix ``(n, n_classes)``, and integer labels ``y`` ``(n,)`` in
``0..n_classes-1``. They are registered in :data:`METRICS` under :class:`MetricName`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from stream_ensemble.errors import CombinerError, ConfigError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike
_E = TypeVar("_E", bound=Enum)
_F = TypeVar("_F")

_EPS = 1e-15


def as_proba_matrix(p: ArrayLike) -> FloatArray:
    """Return probabilities as an ``(n, n_classes)`` float64 matrix.

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability (binary) or full class probabilities.

    Returns
    -------
    ndarray of shape (n, n_classes)
        ``[1 - p, p]`` for a 1-d input, the input as float64 otherwise.

    Raises
    ------
    CombinerError
        If ``p`` is not 1-d or 2-d, or a 2-d input has fewer than 2 columns.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 1:
        return np.column_stack([1.0 - arr, arr])
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise CombinerError(f"probabilities must be (n,) or (n, n_classes>=2), got {arr.shape}")
    return arr


def _labels(y: ArrayLike, n: int) -> npt.NDArray[np.int64]:
    labels = np.asarray(y).astype(np.int64, copy=False).ravel()
    if labels.shape[0] != n:
        raise CombinerError(f"{labels.shape[0]} labels for {n} rows")
    return labels


def log_loss(p: ArrayLike, y: ArrayLike) -> float:
    """Mean negative log-likelihood of the true class (natural log).

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : array-like of shape (n,)
        Integer labels in ``0..n_classes-1``.

    Returns
    -------
    float
        Mean of ``-log(max(p_true, 1e-15))``.

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    proba = as_proba_matrix(p)
    labels = _labels(y, proba.shape[0])
    p_true = proba[np.arange(proba.shape[0]), labels]
    return float(-np.mean(np.log(np.clip(p_true, _EPS, 1.0))))


def accuracy(p: ArrayLike, y: ArrayLike) -> float:
    """Fraction of rows whose argmax class equals the label (binary: ``p >= 0.5`` is class 1).

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : array-like of shape (n,)
        Integer labels.

    Returns
    -------
    float
        Accuracy in [0, 1].

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    arr = np.asarray(p, dtype=np.float64)
    pred = (arr >= 0.5).astype(np.int64) if arr.ndim == 1 else np.argmax(as_proba_matrix(arr), 1)
    return float(np.mean(pred == _labels(y, pred.shape[0])))


def roc_auc(p: ArrayLike, y: ArrayLike) -> float:
    """ROC AUC (binary), or macro one-vs-rest ROC AUC for more than two classes.

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : array-like of shape (n,)
        Integer labels.

    Returns
    -------
    float
        AUC in [0, 1]; ``nan`` when ``y`` holds a single class.

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    proba = as_proba_matrix(p)
    labels = _labels(y, proba.shape[0])
    if np.unique(labels).shape[0] < 2:
        return math.nan
    if proba.shape[1] == 2:
        return float(roc_auc_score(labels, proba[:, 1]))
    return float(
        roc_auc_score(labels, proba, multi_class="ovr", labels=np.arange(proba.shape[1]))
    )


def brier(p: ArrayLike, y: ArrayLike) -> float:
    """Brier score.

    Binary (1-d input or 2 columns): mean of ``(p_1 - y)^2``, in [0, 1]. More than two
    classes: mean over rows of ``sum_k (p_k - [y == k])^2`` (Brier's original form, in [0, 2]).

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : array-like of shape (n,)
        Integer labels.

    Returns
    -------
    float
        The Brier score (lower is better).

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    proba = as_proba_matrix(p)
    labels = _labels(y, proba.shape[0])
    if proba.shape[1] == 2:
        return float(np.mean((proba[:, 1] - labels) ** 2))
    onehot = np.zeros_like(proba)
    onehot[np.arange(proba.shape[0]), labels] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def expected_calibration_error(p: ArrayLike, y: ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error over the top-class confidence (Guo et al., 2017).

    Each row's confidence is its top-class probability ``max_k p_k`` and its decision the argmax
    class. Rows are put in ``n_bins`` equal-width bins ``((b-1)/B, b/B]`` (the first bin also
    holds 0), and ``ECE = sum_b |B_b|/n * |accuracy(B_b) - mean confidence(B_b)|``. For a 1-d
    binary input the confidence is ``max(p, 1 - p)``.

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : array-like of shape (n,)
        Integer labels.
    n_bins : int, default=15
        Number of equal-width bins on [0, 1].

    Returns
    -------
    float
        ECE in [0, 1].

    Raises
    ------
    ConfigError
        If ``n_bins < 1``.
    CombinerError
        On a shape mismatch.
    """
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    proba = as_proba_matrix(p)
    labels = _labels(y, proba.shape[0])
    n = proba.shape[0]
    if n == 0:
        return 0.0
    conf = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == labels).astype(np.float64)
    # ceil(conf * B) - 1 maps (b-1)/B < conf <= b/B to bin b-1 (right-closed bins).
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=hit, minlength=n_bins)
    return float(np.sum(np.abs(hit_sum - conf_sum)) / n)


def relative_reduction(value: float, reference: float) -> float:
    """Relative error reduction ``(reference - value) / reference``.

    Parameters
    ----------
    value : float
        Error of the candidate (e.g. the ensemble's log loss).
    reference : float
        Error of the reference (e.g. the best single model's log loss).

    Returns
    -------
    float
        Positive when ``value`` is lower (better) than ``reference``; ``nan`` if ``reference``
        is 0.

    Raises
    ------
    None
    """
    if reference == 0:
        return math.nan
    return (reference - value) / reference


class MetricName(str, Enum):
    """Names of the probability metrics in :data:`METRICS`."""

    LOG_LOSS = "log_loss"
    ACCURACY = "accuracy"
    ROC_AUC = "roc_auc"
    BRIER = "brier"
    ECE = "ece"


ProbaMetric = Callable[[ArrayLike, ArrayLike], float]

METRICS: dict[MetricName, ProbaMetric] = {
    MetricName.LOG_LOSS: log_loss,
    MetricName.ACCURACY: accuracy,
    MetricName.ROC_AUC: roc_auc,
    MetricName.BRIER: brier,
    MetricName.ECE: expected_calibration_error,
}

#: Whether a higher value of the metric is better (for "best model" picks and reports).
HIGHER_IS_BETTER: dict[MetricName, bool] = {
    MetricName.LOG_LOSS: False,
    MetricName.ACCURACY: True,
    MetricName.ROC_AUC: True,
    MetricName.BRIER: False,
    MetricName.ECE: False,
}


def lookup(registry: dict[_E, _F], enum: type[_E], name: str | _E, what: str) -> _F:
    try:
        return registry[enum(name)]
    except ValueError as exc:
        raise ConfigError(f"unknown {what} {name!r}; known: {[m.value for m in enum]}") from exc


def get_metric(name: str | MetricName) -> ProbaMetric:
    """Look up a probability metric by name.

    Parameters
    ----------
    name : str or MetricName
        One of the :class:`MetricName` values.

    Returns
    -------
    callable
        ``metric(p, y) -> float``.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    return lookup(METRICS, MetricName, name, "metric")


def evaluate(p: ArrayLike, y: ArrayLike) -> dict[str, float]:
    """Every metric of :data:`METRICS` on one set of predictions.

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : array-like of shape (n,)
        Integer labels.

    Returns
    -------
    dict
        Metric name (str) -> value.

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    proba = as_proba_matrix(p)
    return {name.value: fn(proba, y) for name, fn in METRICS.items()}

