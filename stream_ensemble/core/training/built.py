"""What :func:`~stream_ensemble.core.training.builder.build` is told (``BuildConfig``) and what it returns
(``BuiltEnsemble``: the fitted strategies, calibrators and conformal sets, scoring member outputs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream_ensemble.core.confidence.calibration import EnsembleCalibrator, parse_method
from stream_ensemble.core.confidence.conformal import ConformalClassifier
from stream_ensemble.core.confidence.temperature import TemperatureCalibrator
from stream_ensemble.core.members.oof import MemberFit, predict_members
from stream_ensemble.core.members.search import SearchReport
from stream_ensemble.core.selection import SelectionConstraints
from stream_ensemble.core.strategies import AUTO, EnsembleStrategy, parse_strategy
from stream_ensemble.core.training.choice import Choice
from stream_ensemble.core.training.crossfit import calibrated
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]


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
    guard_z : float
        With ``strategy="auto"``: the lowest-loss candidate is served only when its paired lead
        over ``best_member`` on the calibration part exceeds ``guard_z`` standard errors of the
        per-row loss difference, else ``best_member`` is
        (:func:`~stream_ensemble.core.training.choice.choose_strategy`). Default 1 (one SE,
        the conventional bar; not tuned on the benchmark); 0 serves the lowest loss.

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
    guard_z: float = 1.0

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
        if not (isinstance(self.guard_z, (int, float)) and math.isfinite(self.guard_z) and self.guard_z >= 0):
            raise ConfigError(f"guard_z must be a finite number >= 0, got {self.guard_z!r}")
        if not 0.0 < self.conformal_alpha < 1.0:
            raise ConfigError(f"conformal_alpha must be in (0, 1), got {self.conformal_alpha}")


@dataclass(frozen=True, eq=False)
class BuiltEnsemble:
    """Everything :func:`build` produced.

    Attributes
    ----------
    members : MemberFit
        Refit estimators, names, families, measured costs, OOF predictions, failures.
    strategies : dict of str to EnsembleStrategy
        Fitted strategies by name.
    calibrators : dict of str to EnsembleCalibrator or None
        Per strategy (``None`` for more than two classes).
    conformals : dict of str to ConformalClassifier
        Per strategy.
    default : str
        Strategy served by default (``config.strategy``, or the validated pick for ``auto``).
    member_metrics : dict of str to dict
        Member name -> ``log_loss``, ``accuracy``, ``roc_auc``, ``brier`` on the calibration part.
    strategy_metrics : dict of str to dict
        Strategy name -> metrics of its raw probabilities on the whole calibration part, plus
        ``calibrated_*`` metrics on the calibration part (rows the calibrator did not see).
    failed_strategies : dict of str to str
        Requested strategies (other than the default) that could not be fit, with the reason.
    calibration_split : str
        Which rows the calibrator and the conformal sets were fit on (module docstring).
    config : BuildConfig
    confidence_measures : dict of str to str
        Strategy name -> the confidence definition served (chosen on the calibration part,
        :func:`~stream_ensemble.core.training.choice.choose_confidence`).
    confidence_auroc : dict of str to dict
        Strategy name -> error AUROC of every confidence definition on the calibration part.
    strategy_choice : Choice or None
        How ``default`` was chosen (``None`` when configured by name).
    confidence_choices : dict of str to Choice
        Strategy name -> how its confidence measure was chosen.
    search : dict of str to SearchReport
        Hyperparameter search per tuned member.
    """

    members: MemberFit
    strategies: dict[str, EnsembleStrategy]
    calibrators: dict[str, EnsembleCalibrator | TemperatureCalibrator | None]
    conformals: dict[str, ConformalClassifier]
    default: str
    member_metrics: dict[str, dict[str, float]]
    strategy_metrics: dict[str, dict[str, float]]
    failed_strategies: dict[str, str]
    calibration_split: str
    config: BuildConfig
    confidence_measures: dict[str, str] = field(default_factory=dict)
    confidence_auroc: dict[str, dict[str, float]] = field(default_factory=dict)
    strategy_choice: Choice | None = None
    confidence_choices: dict[str, Choice] = field(default_factory=dict)
    search: dict[str, SearchReport] = field(default_factory=dict)

    def score(self, P: Proba, available: Mask, X: Matrix | None = None,
              strategy: str | None = None) -> dict[str, np.ndarray]:
        """Combine, calibrate and build prediction sets for a batch of member outputs.

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, n_classes)
            Member probabilities (``NaN`` where ``available`` is False).
        available : ndarray of bool, shape (n_events, n_models)
        X : ndarray of shape (n_events, n_features), optional
            Needed by dynamic strategies; its rows also seed the tie-breaking of randomized
            conformal sets (``P``'s rows when absent).
        strategy : str, optional
            Default: ``self.default``.

        Returns
        -------
        dict of str to ndarray
            ``raw_proba`` (n, c), ``raw_positive`` (n,), ``positive`` (n,) calibrated,
            ``proba`` (n, c) calibrated, ``set_proba`` (n, c) calibrated without the clip (what
            the conformal sets are computed on), ``decision`` (n,) int, ``prediction_set`` (n, c) bool,
            ``used`` (n, m) bool.

        Raises
        ------
        ConfigError
            Unknown or unbuilt strategy, bad shapes.
        CombinerError
            Invalid probabilities.
        """
        name = self._name(strategy)
        st = self.strategies[name]
        raw = st.predict_proba(P, available, X)
        proba = calibrated(self.calibrators[name], raw)
        set_proba = calibrated(self.calibrators[name], raw, clip=False)
        return {
            "raw_proba": raw,
            "raw_positive": raw[:, 1],
            "positive": proba[:, 1],
            "proba": proba,
            "set_proba": set_proba,
            "decision": np.argmax(proba, axis=1).astype(np.int64),
            "prediction_set": self.conformals[name].predict_set(
                set_proba, u=self.conformals[name].tie_breaks(X if X is not None else P.reshape(P.shape[0], -1))),
            "used": st.used_mask(available, X),
        }

    def predict(self, X: Matrix, strategy: str | None = None,
                healthy: Mask | None = None) -> dict[str, np.ndarray]:
        """Run the members a strategy needs on ``X`` and :meth:`score` the result.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        strategy : str, optional
        healthy : ndarray of bool, shape (n_models,), optional
            Default: every member healthy.

        Returns
        -------
        dict of str to ndarray
            As :meth:`score`.

        Raises
        ------
        ConfigError
            Unknown strategy or bad shapes.
        ModelPoolError
            A member failed to predict.
        """
        st = self.strategies[self._name(strategy)]
        h = np.ones(self.members.n_models, dtype=bool) if healthy is None else healthy
        run = st.required_members(h)
        P = predict_members(self.members.estimators, X, n_classes=self.members.n_classes, run=run)
        return self.score(P, np.broadcast_to(run, P.shape[:2]).copy(), X, strategy)

    def _name(self, strategy: str | None) -> str:
        name = self.default if strategy is None else parse_strategy(strategy).value
        if name not in self.strategies:
            raise ConfigError(f"strategy {name!r} was not built; built: {sorted(self.strategies)}")
        return name
