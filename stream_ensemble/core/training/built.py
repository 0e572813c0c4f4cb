"""What :func:`~stream_ensemble.core.training.builder.build` returns: :class:`BuiltEnsemble`.

The fitted members, strategies, calibrators and conformal predictors, the choices made on
validation rows, and the scoring path (combine -> calibrate -> prediction sets) used by the
benchmarks and the registry writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream_ensemble.core.confidence.calibration import EnsembleCalibrator
from stream_ensemble.core.confidence.conformal import ConformalClassifier
from stream_ensemble.core.confidence.temperature import TemperatureCalibrator
from stream_ensemble.core.members.oof import MemberFit, predict_members
from stream_ensemble.core.members.search import SearchReport
from stream_ensemble.core.strategies import EnsembleStrategy, parse_strategy
from stream_ensemble.core.training.choice import Choice
from stream_ensemble.core.training.config import BuildConfig
from stream_ensemble.core.training.crossfit import calibrated
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Mask, Matrix, Proba


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
