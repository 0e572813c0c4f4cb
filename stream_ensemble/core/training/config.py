"""How :func:`~stream_ensemble.core.training.builder.build` fits an ensemble: :class:`BuildConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from stream_ensemble.core.confidence.calibration import parse_method
from stream_ensemble.core.selection import SelectionConstraints
from stream_ensemble.core.strategies import AUTO, parse_strategy
from stream_ensemble.errors import ConfigError


def _default_constraints() -> SelectionConstraints:
    return SelectionConstraints(max_members=8, time_limit_s=2.0)


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """How :func:`build` fits an ensemble (validated on construction).

    Parameters
    ----------
    strategy : str
        Strategy served by default: ``"auto"`` (chosen per ensemble on validation rows, module
        docstring) or a key of ``strategies.STRATEGIES``.
    search_budget_s : float
        Seconds the hyperparameter search of the tunable members may start candidates in.
    constraints : SelectionConstraints
        Budget (default ``inf``, ms per 1,000 rows), ``max_members`` (default 8),
        ``min_diversity`` (0), metric (``log_loss``), time limit (2 s).
    n_folds : int
        Stratified folds of the members' OOF predictions.
    calibration : {"auto", "platt", "isotonic", "none"}
    conformal_alpha : float
        Miscoverage level of the prediction sets, in (0, 1).
    mondrian : bool
        Class-conditional conformal thresholds.
    conformal_randomized : bool
        Smoothed (randomized) conformal sets, coverage exactly ``1 - alpha`` instead of at
        least (``core.confidence.conformal`` module docstring); the tie-breaking uniform of a row is a
        hash of its encoded features, so the same event always gets the same set.
    random_state : int
        Seeds folds, the calibration halves, regions and inner CV.
    crossfit_below : int
        With ``strategy="auto"`` and fewer calibration rows than this, the choice also judges
        the candidates on cross-fitted losses over the fit part
        (:mod:`~stream_ensemble.core.training.crossfit`). Default 0: off. That evidence
        scores a different pipeline from the one served (strategies fit on two thirds of the
        OOF rows, applied to fold models' predictions instead of the refit members'), and
        pooled 4:1 with the calibration part it outweighs the only rows that judge the served
        pipeline itself; on six small benchmark datasets it made the choice worse
        (crossfit module docstring).

    Raises
    ------
    ConfigError
        Any invalid value.
    """

    strategy: str = AUTO
    search_budget_s: float = math.inf
    constraints: SelectionConstraints = field(default_factory=_default_constraints)
    n_folds: int = 5
    calibration: str = "auto"
    conformal_alpha: float = 0.1
    mondrian: bool = False
    conformal_randomized: bool = True
    random_state: int = 0
    crossfit_below: int = 0

    def __post_init__(self) -> None:
        if self.strategy != AUTO:
            parse_strategy(self.strategy)
        if not self.search_budget_s >= 0:
            raise ConfigError(f"search_budget_s must be >= 0, got {self.search_budget_s}")
        if not isinstance(self.constraints, SelectionConstraints):
            raise ConfigError(f"constraints must be a SelectionConstraints, got {type(self.constraints).__name__}")
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ConfigError(f"n_folds must be an int >= 2, got {self.n_folds!r}")
        parse_method(self.calibration)
        if not isinstance(self.crossfit_below, int) or self.crossfit_below < 0:
            raise ConfigError(f"crossfit_below must be an int >= 0, got {self.crossfit_below!r}")
        if not 0.0 < self.conformal_alpha < 1.0:
            raise ConfigError(f"conformal_alpha must be in (0, 1), got {self.conformal_alpha}")
