"""Confidence: everything a scored event says about how sure the ensemble is, and why.

Owns calibration of the combined probability (``calibration``), split-conformal prediction sets
(``conformal``), the uncertainty split and the served confidence measures (``uncertainty``),
and the explanation payload (``explanation``, with per-feature ``occlusion`` and JSON-ready
``rounding``). Everything works on whole-batch arrays. A new confidence measure is an entry in
``uncertainty.CONFIDENCE_MEASURES``; a new exclusion reason a member of
``explanation.ExclusionReason``. May import :mod:`stream_ensemble.core.evaluation`, types and
errors; never selection, strategies, serving or I/O.
"""

from stream_ensemble.core.confidence.calibration import CLIP, CalibrationMethod, EnsembleCalibrator, parse_method
from stream_ensemble.core.confidence.conformal import (
    ConformalClassifier,
    class_coverage,
    coverage,
    empty_rate,
    mean_set_size,
    row_uniforms,
)
from stream_ensemble.core.confidence.explanation import (
    DEFAULT_EXPLAIN_LEVEL,
    EXCLUSION_CODES,
    NO_EXCLUSION,
    TOP_K,
    ExclusionReason,
    ExplainLevel,
    ExplanationInputs,
    build_explanations,
    exclusion_code,
    parse_explain_level,
)
from stream_ensemble.core.confidence.occlusion import OcclusionAttribution, occlusion_attribution
from stream_ensemble.core.confidence.rounding import json_list, round_sig
from stream_ensemble.core.confidence.uncertainty import (
    CONFIDENCE_MEASURES,
    DEFAULT_CONFIDENCE,
    ConfidenceName,
    Uncertainty,
    confidence,
    entropy,
    uncertainty,
)

__all__ = [
    "CLIP", "CONFIDENCE_MEASURES", "DEFAULT_CONFIDENCE", "DEFAULT_EXPLAIN_LEVEL", "EXCLUSION_CODES",
    "NO_EXCLUSION", "TOP_K", "CalibrationMethod", "ConfidenceName", "ConformalClassifier",
    "EnsembleCalibrator", "ExclusionReason", "ExplainLevel", "ExplanationInputs", "OcclusionAttribution", "Uncertainty",
    "build_explanations", "class_coverage", "confidence", "coverage", "empty_rate", "entropy",
    "exclusion_code", "json_list", "mean_set_size", "occlusion_attribution", "parse_explain_level",
    "parse_method", "round_sig", "row_uniforms", "uncertainty",
]
