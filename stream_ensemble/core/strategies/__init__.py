"""Strategies: a member selection plus a combiner, fitted on out-of-fold predictions.

Owns the catalogue of named strategies and the default (``catalogue``), the per healthy-set
plans and re-selection after a health change (``planner``) and the fitted estimator the serving
path drives (``strategy``: :class:`EnsembleStrategy`). A new strategy is a
:class:`StrategyName` plus a :class:`StrategySpec` entry in ``catalogue.STRATEGIES`` combining an
existing selector kind with a registered combiner. May import :mod:`stream_ensemble.core.selection`,
:mod:`stream_ensemble.core.combiners`, :mod:`stream_ensemble.core.confidence` (exclusion reasons),
types and errors; never serving, adapters or I/O.
"""

from stream_ensemble.core.strategies.catalogue import (
    AUTO,
    AUTO_CANDIDATES,
    DEFAULT_STRATEGY,
    STRATEGIES,
    SelectorKind,
    StrategyName,
    StrategySpec,
    binary_only,
    parse_strategy,
)
from stream_ensemble.core.strategies.strategy import EnsembleStrategy, FittedStrategy, fit_strategy

__all__ = [
    "AUTO", "AUTO_CANDIDATES", "DEFAULT_STRATEGY", "STRATEGIES", "binary_only", "EnsembleStrategy", "FittedStrategy", "SelectorKind", "StrategyName",
    "StrategySpec", "fit_strategy", "parse_strategy",
]
