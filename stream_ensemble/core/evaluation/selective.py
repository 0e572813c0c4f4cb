"""Confidence metrics: how well a confidence score ranks decisions.

They take a confidence ``(n,)`` and a boolean ``correct`` ``(n,)`` (was the ensemble's decision
right?) and are registered in :data:`SELECTIVE_METRICS` under :class:`SelectiveMetricName`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum

import numpy as np
from sklearn.metrics import roc_auc_score

from stream_ensemble.core.evaluation.metrics import ArrayLike, lookup
from stream_ensemble.errors import CombinerError, ConfigError


def error_auroc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """AUROC of a confidence score at separating correct (positive) from wrong decisions.

    1.0 means every correct decision is more confident than every wrong one; 0.5 is chance.

    Parameters
    ----------
    confidence : array-like of shape (n,)
        Confidence of each decision (higher = surer).
    correct : array-like of shape (n,)
        Whether each decision was right.

    Returns
    -------
    float
        AUROC, or ``nan`` when every decision is correct or every one is wrong.

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise CombinerError(f"confidence {conf.shape} and correct {ok.shape} differ")
    if ok.all() or not ok.any():
        return math.nan
    return float(roc_auc_score(ok, conf))


def selective_accuracy(confidence: ArrayLike, correct: ArrayLike, coverage: float = 0.8) -> float:
    """Accuracy on the ``coverage`` fraction of decisions with the highest confidence.

    The ``k = ceil(coverage * n)`` most confident rows are kept (at least one). When the
    cut falls inside a group of equal confidences, the rows needed from that group count with
    the group's mean accuracy -- the expected value under random tie-breaking -- so the result
    does not depend on row order (a saturated ensemble gives many rows a confidence of
    exactly 1.0, and which of them a sort happened to keep would otherwise decide the figure).

    Parameters
    ----------
    confidence : array-like of shape (n,)
        Confidence of each decision.
    correct : array-like of shape (n,)
        Whether each decision was right.
    coverage : float, default=0.8
        Fraction of rows kept, in (0, 1].

    Returns
    -------
    float
        Accuracy on the kept rows; ``nan`` for an empty input.

    Raises
    ------
    ConfigError
        If ``coverage`` is outside (0, 1].
    CombinerError
        On a shape mismatch.
    """
    if not 0.0 < coverage <= 1.0:
        raise ConfigError(f"coverage must be in (0, 1], got {coverage}")
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise CombinerError(f"confidence {conf.shape} and correct {ok.shape} differ")
    if conf.shape[0] == 0:
        return math.nan
    k = max(1, math.ceil(coverage * conf.shape[0] - 1e-9))
    cut = np.sort(conf)[::-1][k - 1]
    above = conf > cut
    tied = conf == cut
    n_above = int(above.sum())
    kept_correct = float(ok[above].sum()) + (k - n_above) * float(ok[tied].mean())
    return kept_correct / k


class SelectiveMetricName(str, Enum):
    """Names of the confidence metrics in :data:`SELECTIVE_METRICS`."""

    ERROR_AUROC = "error_auroc"
    SELECTIVE_ACCURACY = "selective_accuracy"


SelectiveMetric = Callable[[ArrayLike, ArrayLike], float]

SELECTIVE_METRICS: dict[SelectiveMetricName, SelectiveMetric] = {
    SelectiveMetricName.ERROR_AUROC: error_auroc,
    SelectiveMetricName.SELECTIVE_ACCURACY: selective_accuracy,
}

def get_selective_metric(name: str | SelectiveMetricName) -> SelectiveMetric:
    """Look up a confidence metric (``metric(confidence, correct) -> float``) by name.

    Parameters
    ----------
    name : str or SelectiveMetricName
        One of the :class:`SelectiveMetricName` values.

    Returns
    -------
    callable
        ``metric(confidence, correct) -> float``.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    return lookup(SELECTIVE_METRICS, SelectiveMetricName, name, "selective metric")
