"""Build an ensemble: members (OOF) -> strategies -> calibration -> conformal sets.

Data protocol (every step is fit on rows the previous steps never trained on):

1. ``fit`` part: each member is cross-validated for out-of-fold (OOF) predictions and refit on
   all of it (:func:`~stream_ensemble.core.members.oof.fit_members`); every strategy (selection,
   weights, meta-learner) is fit on the OOF predictions only.
2. Calibrator (:class:`~stream_ensemble.core.confidence.calibration.EnsembleCalibrator`): fit on the
   strategy's combined probabilities over the OOF rows of the ``fit`` part. Every member
   prediction there is out of fold; only the strategy's few parameters (selection, weights,
   meta-learner) were fit on the same rows, and the calibration map is monotone with at most
   two parameters unless there are >= 1,000 rows. Using the OOF rows (60% of the data)
   instead of a slice of the calibration part matters on small data: a calibrator fit on
   70 rows made test log loss 40% worse on one benchmark dataset.
3. ``calibration`` part (held out; no member, strategy or calibrator saw it): the refit
   members predict it once, and the split-conformal sets
   (:class:`~stream_ensemble.core.confidence.conformal.ConformalClassifier`) are fit on the *calibrated*
   probabilities of all of it, so its scores are exchangeable with those of new rows.
4. Member validation metrics (for the registry manifests) are computed on the whole
   calibration part.

Before step 1, members that list candidate hyperparameters are tuned on an inner split of the
``fit`` part (:func:`~stream_ensemble.core.members.search.tune_specs`, ``search_budget_s``).

Calibration: binary problems map the positive-class probability (``EnsembleCalibrator``);
with K > 2 classes one temperature is fit on the same OOF rows (``TemperatureCalibrator``).

The served strategy (``strategy="auto"``, the default) and confidence measure are chosen per
ensemble on the calibration part (:mod:`stream_ensemble.core.training.choice`); with a small
calibration part the strategy choice also uses cross-fitted losses on the fit part
(:mod:`stream_ensemble.core.training.crossfit`). A binary-only
strategy (boosting, rank average) asked for by name on K > 2 classes is refused with a
:class:`~stream_ensemble.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream_ensemble.core.confidence.calibration import EnsembleCalibrator, parse_method
from stream_ensemble.core.confidence.conformal import ConformalClassifier
from stream_ensemble.core.confidence.temperature import TemperatureCalibrator
from stream_ensemble.core.evaluation import evaluate
from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.core.members.oof import MemberFit, fit_members, predict_members
from stream_ensemble.core.members.search import SearchReport, tune_specs
from stream_ensemble.core.selection import SelectionConstraints
from stream_ensemble.core.strategies import (
    AUTO,
    AUTO_CANDIDATES,
    EnsembleStrategy,
    binary_only,
    fit_strategy,
    parse_strategy,
)
from stream_ensemble.core.training.choice import (
    Choice,
    choose_confidence,
    choose_strategy,
    confidence_candidates,
    row_log_loss,
)
from stream_ensemble.core.training.crossfit import calibrated, crossfit_losses, fit_calibrator, served_outputs
from stream_ensemble.errors import CombinerError, ConfigError, SelectionError
from stream_ensemble.types import Labels, Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]

#: Member metrics written to the registry manifests.
MEMBER_METRICS = ("log_loss", "accuracy", "roc_auc", "brier")


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
        (:mod:`~stream_ensemble.core.training.crossfit`); 0 disables. Above it the calibration
        part alone resolves the gaps that matter, and cross-fitting would refit every candidate
        three more times on large data.

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
    crossfit_below: int = 2000

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


def _candidates(cfg: BuildConfig, n_classes: int) -> list[str]:
    """Strategies the default is chosen among: the configured one, or the ``auto`` candidates."""
    if cfg.strategy == AUTO:
        return [c.value for c in AUTO_CANDIDATES if n_classes <= 2 or not binary_only(c)]
    name = parse_strategy(cfg.strategy)
    if n_classes > 2 and binary_only(name):
        multi = ", ".join(c.value for c in AUTO_CANDIDATES if not binary_only(c))
        raise ConfigError(f"strategy {name.value!r} supports binary labels only, got {n_classes} classes; "
                          f"use --strategy auto (the default) or one of: {multi}")
    return [name.value]


def _metrics(p: FloatArray, y: Labels, prefix: str = "", keep: Sequence[str] | None = None) -> dict[str, float]:
    # NaN (e.g. ROC AUC on a one-class slice) is left out: manifests are strict JSON.
    return {f"{prefix}{k}": float(v) for k, v in evaluate(p, y).items()
            if (keep is None or k in keep) and not math.isnan(v)}


def build(
    specs: Sequence[ModelSpec],
    X_fit: Matrix,
    y_fit: Labels,
    X_cal: Matrix,
    y_cal: Labels,
    config: BuildConfig | None = None,
    *,
    strategies: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuiltEnsemble:
    """Fit members, strategies, calibrators and conformal sets (module docstring).

    Parameters
    ----------
    specs : sequence of ModelSpec
        Unfitted members.
    X_fit : ndarray of shape (n_fit, n_features)
    y_fit : ndarray of int, shape (n_fit,)
    X_cal : ndarray of shape (n_cal, n_features)
        Held-out calibration rows (never trained on).
    y_cal : ndarray of int, shape (n_cal,)
    config : BuildConfig, optional
    strategies : sequence of str, optional
        Strategies to fit (default: just ``config.strategy``, which is always added).
    progress : callable, optional
        Receives a short message per step.

    Returns
    -------
    BuiltEnsemble

    Raises
    ------
    ConfigError
        Invalid config, unknown strategy names or inconsistent shapes.
    ModelPoolError
        No member could be fitted.
    SelectionError, CombinerError
        The default strategy cannot be fit (infeasible constraints, invalid data).
    """
    cfg = config or BuildConfig()
    say = progress or (lambda _msg: None)
    n_classes = int(np.unique(np.asarray(y_fit)).shape[0])
    candidates = _candidates(cfg, n_classes)
    names = list(candidates)
    for s in strategies or ():
        name = parse_strategy(s).value
        if name not in names and (n_classes <= 2 or not binary_only(parse_strategy(name))):
            names.append(name)
    Xc = np.asarray(X_cal, dtype=np.float64)
    yc = np.asarray(y_cal).astype(np.int64)
    if Xc.ndim != 2 or yc.shape != (Xc.shape[0],):
        raise ConfigError(f"X_cal must be (n, d) and y_cal (n,), got {Xc.shape} and {yc.shape}")

    specs, search = tune_specs(specs, X_fit, y_fit, budget_s=cfg.search_budget_s,
                               random_state=cfg.random_state, progress=say)
    mf = fit_members(specs, X_fit, y_fit, n_folds=cfg.n_folds, random_state=cfg.random_state, progress=say)
    fitted: dict[str, EnsembleStrategy] = {}
    failed: dict[str, str] = {}
    for name in names:
        say(f"fitting strategy {name}")
        try:
            fitted[name] = fit_strategy(name, mf.P_oof, y_fit, costs=mf.costs_ms_per_1k,
                                        constraints=cfg.constraints, X_oof=X_fit,
                                        member_names=mf.names, random_state=cfg.random_state)
        except (SelectionError, CombinerError) as exc:
            if len(candidates) == 1 and name == candidates[0]:
                raise  # the strategy asked for by name cannot be fit
            failed[name] = f"{type(exc).__name__}: {exc}"
    if not any(c in fitted for c in candidates):
        raise SelectionError(f"no candidate strategy could be fit: {failed}")

    say("predicting the calibration part")
    P_cal = predict_members(mf.estimators, Xc, n_classes=mf.n_classes)
    member_metrics = {n: _metrics(P_cal[:, j], yc, keep=MEMBER_METRICS) for j, n in enumerate(mf.names)}
    calibrators: dict[str, EnsembleCalibrator | TemperatureCalibrator | None] = {}
    conformals: dict[str, ConformalClassifier] = {}
    strategy_metrics: dict[str, dict[str, float]] = {}
    confidence_choices: dict[str, Choice] = {}
    val_losses: dict[str, FloatArray] = {}
    for name, st in fitted.items():
        say(f"calibrating {name}")
        raw = served_outputs(st, P_cal, Xc)
        oof = served_outputs(st, mf.P_oof, np.asarray(X_fit, dtype=np.float64))
        cal = fit_calibrator(oof, np.asarray(y_fit).astype(np.int64), cfg.calibration, cfg.random_state)
        proba = calibrated(cal, raw)
        conformals[name] = ConformalClassifier(cfg.conformal_alpha, cfg.mondrian, cfg.conformal_randomized).fit(calibrated(cal, raw, clip=False), yc)
        calibrators[name] = cal
        strategy_metrics[name] = {**_metrics(raw, yc), **_metrics(proba, yc, "calibrated_")}
        val_losses[name] = row_log_loss(proba, yc)
        confidence_choices[name] = choose_confidence(confidence_candidates(st, P_cal, Xc, proba), proba.argmax(axis=1) == yc,
                                                     random_state=cfg.random_state)
    strategy_choice = None
    if cfg.strategy == AUTO:
        evidence = {c: val_losses[c] for c in candidates if c in val_losses}
        if yc.size < cfg.crossfit_below:
            say("cross-fitting the candidates on the fit part")
            extra = crossfit_losses(list(evidence), mf.P_oof, np.asarray(y_fit), np.asarray(X_fit, dtype=np.float64),
                                    costs=mf.costs_ms_per_1k, constraints=cfg.constraints, member_names=mf.names,
                                    calibration=cfg.calibration, random_state=cfg.random_state)
            if len(extra) == len(evidence):  # the same rows for every candidate, or none
                evidence = {c: np.concatenate([extra[c], v]) for c, v in evidence.items()}
        strategy_choice = choose_strategy(evidence)
        default = strategy_choice.chosen
    else:
        default = candidates[0]
    protocol = "calibrator on OOF rows, conformal on the calibration part"
    return BuiltEnsemble(
        members=mf, strategies=fitted, calibrators=calibrators, conformals=conformals,
        default=default, member_metrics=member_metrics,
        strategy_metrics=strategy_metrics, failed_strategies=failed, calibration_split=protocol,
        config=cfg, confidence_measures={k: c.chosen for k, c in confidence_choices.items()},
        confidence_auroc={k: c.scores for k, c in confidence_choices.items()},
        strategy_choice=strategy_choice, confidence_choices=confidence_choices, search=search,
    )
