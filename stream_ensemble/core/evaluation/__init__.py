"""Evaluation: the metrics every benchmark, selector report and manifest quotes.

Owns probability metrics (``metrics``: log loss, accuracy, ROC AUC, Brier, ECE and the relative
reduction against a reference) and confidence metrics (``selective``: error AUROC and
selective accuracy), each looked up by name in a registry. A new metric is a function plus an
entry in ``metrics.METRICS`` or ``selective.SELECTIVE_METRICS``. May import numpy,
scikit-learn and :mod:`stream_ensemble.errors` only.
"""

from stream_ensemble.core.evaluation.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    MetricName,
    ProbaMetric,
    accuracy,
    as_proba_matrix,
    brier,
    evaluate,
    expected_calibration_error,
    get_metric,
    log_loss,
    relative_reduction,
    roc_auc,
)
from stream_ensemble.core.evaluation.selective import (
    SELECTIVE_METRICS,
    SelectiveMetric,
    SelectiveMetricName,
    error_auroc,
    get_selective_metric,
    selective_accuracy,
)

__all__ = [
    "HIGHER_IS_BETTER", "METRICS", "SELECTIVE_METRICS", "MetricName", "ProbaMetric", "SelectiveMetric",
    "SelectiveMetricName", "accuracy", "as_proba_matrix", "brier", "error_auroc", "evaluate",
    "expected_calibration_error", "get_metric", "get_selective_metric", "log_loss", "relative_reduction",
    "roc_auc", "selective_accuracy",
]
