"""The accuracy benchmark: every member, every strategy and outside baselines, side by side.

Protocol, per dataset and per repeat ``r`` (seed ``random_state + r``):

1. stratified split into fit 60% / calibration-validation 20% / test 20%;
2. a :class:`~stream_ensemble.core.features.FeatureEncoder` fit on the fit part only;
3. :func:`~stream_ensemble.core.builder.build` with every strategy: members fit with
   out-of-fold predictions on the fit part, strategies fit on those, then calibrators and
   conformal predictors as ``build`` does it (``BuiltEnsemble.calibration_split`` says on
   which rows; it is recorded per dataset);
4. on the test part: metrics of every member (raw probabilities), every strategy (calibrated
   probabilities; the uncalibrated ones are kept under ``methods_uncalibrated``), ``best_single``
   (the member with the lowest log loss on the calibration-validation part -- chosen on
   validation, never on test), ``sklearn_stacking`` (scikit-learn's ``StackingClassifier``
   over the same specs, cv=5, fit on the fit part), ``deslib_knora_e`` (DESlib ``KNORAE`` over
   the same fitted members, DSEL = the calibration-validation part) and ``default`` (the
   strategy ``build`` serves by default).

Log loss clips probabilities at 1e-15 (DESlib and single trees output exact 0 and 1).
Metrics are averaged over the repeats (``std`` alongside); the relative log-loss reduction
against ``best_single`` is computed per repeat and then averaged.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import StackingClassifier
from threadpoolctl import threadpool_limits

from stream_ensemble.core.data import Dataset, stratified_split
from stream_ensemble.core.evaluation import (
    error_auroc,
    evaluate,
    expected_calibration_error,
    log_loss,
    relative_reduction,
    selective_accuracy,
)
from stream_ensemble.core.features import FeatureEncoder
from stream_ensemble.core.zoo import ModelSpec, default_pool
from stream_ensemble.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]

log = logging.getLogger(__name__)

#: Metric names reported for every method, in table order.
METRIC_NAMES: tuple[str, ...] = ("log_loss", "accuracy", "roc_auc", "brier", "ece")
#: Extra method names besides members and strategies.
BEST_SINGLE = "best_single"
SKLEARN_STACKING = "sklearn_stacking"
DESLIB_KNORA_E = "deslib_knora_e"
DEFAULT = "default"
VALIDATED_STRATEGY = "validated_strategy"
#: Reported relative log-loss reduction key.
REL_LL = "relative_log_loss_reduction"
_LL_CLIP = 1e-15


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run.

    Attributes
    ----------
    splits : int
        Repeated stratified splits per dataset.
    fractions : tuple of float
        Fit / calibration-validation / test fractions.
    random_state : int
        Seed of split ``r`` is ``random_state + r`` (also passed to the pool and ``build``).
    strategies : tuple of str, optional
        Strategies to build; default every entry of ``STRATEGIES``.
    alphas : tuple of float
        Conformal miscoverage levels reported.
    coverage : float
        Coverage of the selective accuracy.
    pool : callable
        ``pool(random_state) -> list[ModelSpec]``; default the 8-member ``default_pool``.
    baselines : bool
        Also run scikit-learn stacking and DESlib KNORA-E.
    min_test_rows : int
        A dataset whose test part is small gets more splits, ``ceil(min_test_rows / n_test)``
        when that exceeds ``splits``: the mean coverage, ECE and selective accuracy of a
        200-row dataset over 5 splits of 40 test rows each have a standard error near the
        tolerances the goals are stated in; 0 disables.
    jobs : int
        Worker processes running the splits of a dataset in parallel (1 = in process).
    """

    splits: int = 3
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    random_state: int = 0
    strategies: tuple[str, ...] | None = None
    alphas: tuple[float, ...] = (0.05, 0.1)
    coverage: float = 0.8
    pool: Callable[[int], list[ModelSpec]] = field(default=default_pool)
    baselines: bool = True
    min_test_rows: int = 0
    jobs: int = 1

    def __post_init__(self) -> None:
        if self.splits < 1:
            raise ConfigError(f"--splits must be >= 1, got {self.splits}")
        if self.min_test_rows < 0:
            raise ConfigError(f"--min-test-rows must be >= 0, got {self.min_test_rows}")
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")

    def splits_for(self, n_test: int) -> int:
        """Splits to run for a dataset whose test part has ``n_test`` rows (see ``min_test_rows``)."""
        return max(self.splits, math.ceil(self.min_test_rows / max(n_test, 1)))
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1.0) > 1e-9 or min(self.fractions) <= 0:
            raise ConfigError(f"fractions must be three positive numbers summing to 1, got {self.fractions}")
        if not all(0.0 < a < 1.0 for a in self.alphas):
            raise ConfigError(f"conformal alphas must be in (0, 1), got {self.alphas}")
        if not 0.0 < self.coverage <= 1.0:
            raise ConfigError(f"coverage must be in (0, 1], got {self.coverage}")


# --------------------------------------------------------------------------- baselines
@contextmanager
def deslib_shim() -> Iterator[None]:
    """Give ``BaseEstimator`` the ``_validate_data`` method DESlib 0.3.7 calls.

    scikit-learn 1.6 removed it; the forwarder to ``sklearn.utils.validation.validate_data`` is
    only in place inside the ``with`` block, so nothing outside the benchmark sees the patch.

    Yields
    ------
    None

    Raises
    ------
    None
    """
    from sklearn.utils.validation import validate_data

    had = "_validate_data" in BaseEstimator.__dict__
    if not had:
        def _validate_data(self: Any, *args: Any, **kwargs: Any) -> Any:
            return validate_data(self, *args, **kwargs)

        setattr(BaseEstimator, "_validate_data", _validate_data)
    try:
        yield
    finally:
        if not had:
            delattr(BaseEstimator, "_validate_data")


def fit_sklearn_stacking(specs: Sequence[ModelSpec], X_fit: FloatArray, y_fit: Labels) -> StackingClassifier:
    """scikit-learn's ``StackingClassifier`` over the pool specs (cv=5, predict_proba features).

    Parameters
    ----------
    specs : sequence of ModelSpec
        The same unfitted members the ensemble is built from.
    X_fit : ndarray of shape (n_fit, n_features)
    y_fit : ndarray of shape (n_fit,)

    Returns
    -------
    StackingClassifier
        Fitted, with the default ``LogisticRegression`` final estimator.

    Raises
    ------
    ValueError
        Propagated from scikit-learn on invalid input.
    """
    model = StackingClassifier(
        estimators=[(s.model_id, clone(s.estimator)) for s in specs],
        cv=5,
        stack_method="predict_proba",
        n_jobs=1,
    )
    return model.fit(X_fit, y_fit)


def deslib_knora_e_proba(
    estimators: Sequence[Any], X_dsel: FloatArray, y_dsel: Labels, X: FloatArray, random_state: int = 0
) -> FloatArray:
    """Fit DESlib's ``KNORAE`` over already fitted members and predict ``X``.

    Parameters
    ----------
    estimators : sequence of fitted classifiers
        The pool members (fitted on the fit part).
    X_dsel : ndarray of shape (n_dsel, n_features)
        Dynamic-selection data: the calibration-validation part (never trained on).
    y_dsel : ndarray of shape (n_dsel,)
    X : ndarray of shape (n, n_features)
        Rows to predict.
    random_state : int, default=0

    Returns
    -------
    ndarray of shape (n, n_classes)

    Raises
    ------
    ValueError
        Propagated from DESlib on invalid input.
    """
    from deslib.des import KNORAE

    with deslib_shim():
        model = KNORAE(pool_classifiers=list(estimators), random_state=random_state)
        model.fit(X_dsel, y_dsel)
        return np.asarray(model.predict_proba(X), dtype=np.float64)


# --------------------------------------------------------------------------- metrics
def proba_metrics(p: npt.ArrayLike, y: Labels) -> dict[str, float]:
    """The five reported metrics of one probability output.

    Parameters
    ----------
    p : array-like of shape (n,) or (n, n_classes)
        Positive-class probability or class probabilities.
    y : ndarray of shape (n,)
        Integer labels.

    Returns
    -------
    dict of str to float
        ``log_loss`` (probabilities clipped at 1e-15), ``accuracy``, ``roc_auc``, ``brier``,
        ``ece`` (15 equal-width bins on the top-class confidence).

    Raises
    ------
    CombinerError
        On a shape mismatch.
    """
    # evaluation.log_loss clips the true-class probability at 1e-15 (= _LL_CLIP).
    out = evaluate(p, y)
    return {k: out[k] for k in METRIC_NAMES}


# --------------------------------------------------------------------------- one split
@dataclass
class SplitResult:
    """Everything measured on one split of one dataset.

    Attributes
    ----------
    methods : dict
        Method name -> metric name -> value (strategies: calibrated probabilities).
    methods_uncalibrated : dict
        Strategy name -> metric name -> value on the raw strategy probabilities.
    best_single : str
        Member with the lowest calibration-validation log loss.
    default : str
        Strategy ``build`` serves by default.
    calibration : dict
        ``ece_before`` / ``ece_after`` of the default strategy on test.
    conformal : list of dict
        ``alpha``, ``mondrian``, ``coverage``, ``mean_set_size`` per level.
    confidence : dict
        Error AUROC and selective accuracy of the default confidence, the baseline's, and the
        error AUROC of every confidence measure.
    timings : dict
        Step -> seconds.
    failed : dict
        Members or strategies that could not be fit, with the reason.
    """

    methods: dict[str, dict[str, float]]
    methods_uncalibrated: dict[str, dict[str, float]]
    best_single: str
    default: str
    calibration: dict[str, float]
    conformal: list[dict[str, Any]]
    confidence: dict[str, Any]
    timings: dict[str, float]
    failed: dict[str, str] = field(default_factory=dict)
    n_test: int = 0
    n_cal: int = 0
    validated_pick: str = ""
    calibration_protocol: str = ""


class _Timer:
    """Accumulates wall time per named step and logs each one."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.seconds[name] = self.seconds.get(name, 0.0) + dt
            log.debug("%s: %s %.2fs", self.label, name, dt)


def _encode(data: Dataset, parts: Sequence[npt.NDArray[np.int64]]) -> list[tuple[FloatArray, Labels]]:
    """Encode every part with an encoder fit on the first part only."""
    fit = data.subset(parts[0])
    enc = FeatureEncoder(data.numeric, data.categorical).fit(fit.columns)
    out = []
    for rows in parts:
        sub = data.subset(rows)
        out.append((enc.transform_columns(sub.columns), sub.y.astype(np.int64)))
    return out


def pool_subset(model_ids: Sequence[str] | None) -> Callable[[int], list[ModelSpec]]:
    """A pool factory keeping only some members of the default pool.

    Parameters
    ----------
    model_ids : sequence of str or None
        Model ids to keep (``None``: the whole default pool).

    Returns
    -------
    callable
        ``pool(random_state) -> list[ModelSpec]``.

    Raises
    ------
    ConfigError
        An id not in the default pool.
    """
    if model_ids is None:
        return default_pool
    known = [s.model_id for s in default_pool(0)]
    unknown = [m for m in model_ids if m not in known]
    if unknown:
        raise ConfigError(f"unknown member(s) {', '.join(unknown)}; the default pool has: {', '.join(known)}")
    return _PoolSubset(frozenset(model_ids))


@dataclass(frozen=True)
class _PoolSubset:
    keep: frozenset[str]

    def __call__(self, random_state: int) -> list[ModelSpec]:
        return [s for s in default_pool(random_state) if s.model_id in self.keep]


def check_strategies(config: BenchConfig) -> list[str]:
    """Names of the strategies a run builds (validated).

    Parameters
    ----------
    config : BenchConfig

    Returns
    -------
    list of str
        ``config.strategies`` plus the default strategy when it is not listed (the
        ``default`` entry of every result reports it), or every registered strategy.

    Raises
    ------
    ConfigError
        An unknown strategy name.
    """
    from stream_ensemble.core.strategies import DEFAULT_STRATEGY, STRATEGIES, parse_strategy

    if config.strategies is None:
        return [s.value for s in STRATEGIES]
    names = [parse_strategy(s).value for s in config.strategies]
    return names if DEFAULT_STRATEGY.value in names else [*names, DEFAULT_STRATEGY.value]


def _conformal_twin(conformal: Any, mondrian: bool, randomized: bool) -> Any:
    """The same fitted conformal predictor with another thresholding rule.

    ``ConformalClassifier.fit`` stores the per-class scores whatever ``mondrian`` is, so the
    twin uses exactly the rows ``build`` calibrated on, whichever protocol it follows.
    """
    twin = copy.copy(conformal)
    twin.mondrian = mondrian
    twin.randomized = randomized
    return twin


def _validated_pick(built: Any, names: Sequence[str]) -> str:
    """Strategy with the lowest calibrated log loss on the calibration part (ties: list order)."""
    def score(name: str) -> float:
        m = built.strategy_metrics.get(name, {})
        v = m.get("calibrated_log_loss", m.get("log_loss", math.inf))
        return float(v) if math.isfinite(v) else math.inf

    return min(names, key=score)


def run_split(data: Dataset, r: int, config: BenchConfig, strategies: Sequence[str]) -> SplitResult:
    """Build and evaluate everything on split ``r`` of one dataset (module docstring).

    Parameters
    ----------
    data : Dataset
    r : int
        Repeat index; the seed is ``config.random_state + r``.
    config : BenchConfig
    strategies : sequence of str
        Strategies to build (validated names).

    Returns
    -------
    SplitResult

    Raises
    ------
    ConfigError
        Too few rows per class for the split or the folds.
    ModelPoolError
        No member could be fitted.
    """
    from stream_ensemble.core.builder import BuildConfig, build
    from stream_ensemble.core.conformal import coverage, mean_set_size, row_uniforms
    from stream_ensemble.core.oof import predict_members
    from stream_ensemble.core.uncertainty import (
        CONFIDENCE_MEASURES,
        DEFAULT_CONFIDENCE,
        ConfidenceName,
        uncertainty,
    )

    seed = config.random_state + r
    timer = _Timer(f"{data.name} split {r}")
    with timer.step("split+encode"):
        parts = stratified_split(data.y, config.fractions, seed)
        (Xf, yf), (Xc, yc), (Xt, yt) = _encode(data, parts)
    specs = config.pool(seed)
    with timer.step("build"):
        built = build(specs, Xf, yf, Xc, yc, BuildConfig(random_state=seed), strategies=list(strategies),
                      progress=lambda msg: log.debug("%s: %s", timer.label, msg))
    mf = built.members
    with timer.step("predict members"):
        P_cal = predict_members(mf.estimators, Xc, n_classes=mf.n_classes)
        P_test = predict_members(mf.estimators, Xt, n_classes=mf.n_classes)
    avail_t = np.ones(P_test.shape[:2], dtype=bool)
    methods: dict[str, dict[str, float]] = {}
    uncal: dict[str, dict[str, float]] = {}
    for j, name in enumerate(mf.names):
        methods[name] = proba_metrics(P_test[:, j], yt)
    val_ll = [log_loss(P_cal[:, j], yc) for j in range(mf.n_models)]
    best = int(np.argmin(val_ll))
    methods[BEST_SINGLE] = dict(methods[mf.names[best]])
    with timer.step("calibrate best single"):
        # Not in the contract: is the ensembles' gain more than calibration of one member?
        from stream_ensemble.core.calibration import EnsembleCalibrator

        cal_best = EnsembleCalibrator(random_state=seed).fit(P_cal[:, best, 1], yc)
        methods["best_single_calibrated"] = proba_metrics(cal_best.transform(P_test[:, best, 1]), yt)
    scored: dict[str, dict[str, np.ndarray]] = {}
    with timer.step("score strategies"):
        for name in strategies:
            if name not in built.strategies:
                continue
            out = built.score(P_test, avail_t, Xt, strategy=name)
            scored[name] = out
            methods[name] = proba_metrics(out["proba"], yt)
            uncal[name] = proba_metrics(out["raw_proba"], yt)
    methods[DEFAULT] = dict(methods[built.default])
    uncal[DEFAULT] = dict(uncal[built.default])
    # Not in the contract: would picking the strategy per ensemble on the calibration part (the
    # same held-out rows best_single is chosen on; never test) beat a fixed default?
    picked = _validated_pick(built, [n for n in strategies if n in scored])
    methods[VALIDATED_STRATEGY] = dict(methods[picked])
    uncal[VALIDATED_STRATEGY] = dict(uncal[picked])
    if config.baselines:
        with timer.step("sklearn stacking"), threadpool_limits(1):
            stack = fit_sklearn_stacking(specs, Xf, yf)
            methods[SKLEARN_STACKING] = proba_metrics(stack.predict_proba(Xt), yt)
        with timer.step("deslib knora-e"), threadpool_limits(1):
            methods[DESLIB_KNORA_E] = proba_metrics(
                deslib_knora_e_proba(mf.estimators, Xc, yc, Xt, random_state=seed), yt)

    with timer.step("calibration/conformal/confidence"):
        d = scored[built.default]
        calibration = {
            "ece_before": expected_calibration_error(d["raw_proba"], yt),
            "ece_after": expected_calibration_error(d["proba"], yt),
        }
        conformal: list[dict[str, Any]] = []
        served = built.conformals[built.default]
        u = row_uniforms(Xt)  # the tie-breaking the worker uses: a hash of the encoded row
        for alpha in config.alphas:
            for is_m in (False, True):
                # The served sets: scores on the unclipped calibrated probability, randomized as
                # built; the deterministic (conservative) rule's coverage is reported beside it.
                cp = _conformal_twin(served, is_m, bool(getattr(served, "randomized", False)))
                sets = cp.predict_set(d["set_proba"], alpha=alpha, u=u)
                strict = _conformal_twin(served, is_m, False).predict_set(d["set_proba"], alpha=alpha)
                conformal.append({"alpha": alpha, "mondrian": is_m, "randomized": bool(cp.randomized),
                                  "coverage": coverage(sets, yt), "mean_set_size": mean_set_size(sets),
                                  "coverage_deterministic": coverage(strict, yt),
                                  "mean_set_size_deterministic": mean_set_size(strict)})
        st = built.strategies[built.default]
        # Stacking weights can be negative; the uncertainty decomposition needs a mixture.
        weights = np.maximum(st.effective_weights(avail_t, Xt), 0.0)
        unc = uncertainty(P_test, d["used"], weights, d["proba"])
        correct = d["decision"] == yt
        candidates = {m.value: fn(d["proba"], unc) for m, fn in CONFIDENCE_MEASURES.items()}
        measures = {k: error_auroc(c, correct) for k, c in candidates.items()}
        measures_selective = {k: selective_accuracy(c, correct, config.coverage) for k, c in candidates.items()}
        # The served definition: the one build() found to rank errors best on the calibration part.
        measure = built.confidence_measures.get(built.default, DEFAULT_CONFIDENCE.value)
        conf = np.clip(CONFIDENCE_MEASURES[ConfidenceName(measure)](d["proba"], unc), 0.0, 1.0)
        mean_all = P_test.mean(axis=1)
        base_conf = mean_all.max(axis=1)
        base_correct = mean_all.argmax(axis=1) == yt
        confidence = {
            "measure": measure,
            "error_auroc": error_auroc(conf, correct),
            f"selective_accuracy_at_{round(config.coverage * 100)}": selective_accuracy(conf, correct, config.coverage),
            "baseline_error_auroc": error_auroc(base_conf, base_correct),
            f"baseline_selective_accuracy_at_{round(config.coverage * 100)}": selective_accuracy(
                base_conf, base_correct, config.coverage),
            "measures": measures,
            f"measures_selective_accuracy_at_{round(config.coverage * 100)}": measures_selective,
        }
    log.info("%s: %s", timer.label, ", ".join(f"{k} {v:.1f}s" for k, v in timer.seconds.items()))
    return SplitResult(
        methods=methods, methods_uncalibrated=uncal, best_single=mf.names[best], default=built.default,
        calibration=calibration, conformal=conformal, confidence=confidence, timings=timer.seconds,
        failed={**{f"member:{k}": v for k, v in mf.failed.items()}, **built.failed_strategies},
        n_test=int(yt.shape[0]),
        n_cal=int(yc.shape[0]),
        validated_pick=picked,
        calibration_protocol=str(built.calibration_split),
    )


# --------------------------------------------------------------------------- aggregation
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std())


def _aggregate_methods(per_split: Sequence[dict[str, dict[str, float]]], reference: str | None) -> dict[str, dict[str, float]]:
    """Mean and std over splits of every metric of every method present in all splits."""
    names = [m for m in per_split[0] if all(m in s for s in per_split)]
    out: dict[str, dict[str, float]] = {}
    for m in names:
        row: dict[str, float] = {}
        for k in METRIC_NAMES:
            row[k], row[f"{k}_std"] = _mean_std([s[m][k] for s in per_split])
        out[m] = row
    if reference is not None:
        for m, row in out.items():
            # Per dataset, the reduction of the mean test log loss over the splits (ratio of
            # means). The mean of per-split ratios is also kept, but it is not the headline:
            # on near-separable data one split's reference loss can be ~0.001, and a single
            # ratio over it then swings the dataset's figure by hundreds of percent.
            row[REL_LL] = relative_reduction(row["log_loss"], out[reference]["log_loss"])
            per = [relative_reduction(s[m]["log_loss"], s[reference]["log_loss"]) for s in per_split]
            row[f"{REL_LL}_split_mean"], row[f"{REL_LL}_std"] = _mean_std(per)
    return out


def aggregate_dataset(data: Dataset, rows_total: int, splits: Sequence[SplitResult]) -> dict[str, Any]:
    """The JSON entry of one dataset from its split results.

    Parameters
    ----------
    data : Dataset
        The rows actually used.
    rows_total : int
        Rows before any ``max_rows`` subsample.
    splits : sequence of SplitResult

    Returns
    -------
    dict
        ``best_single``, ``default``, ``methods`` (mean metrics, ``*_std``, relative log-loss
        reduction vs best single), ``methods_uncalibrated``, ``calibration``, ``conformal``,
        ``confidence``, ``timings_s`` and descriptive keys.

    Raises
    ------
    None
    """
    # Relative reduction of the uncalibrated numbers is also against the (raw) best single.
    uncal = [{**s.methods_uncalibrated, BEST_SINGLE: s.methods[BEST_SINGLE]} for s in splits]
    methods = _aggregate_methods([s.methods for s in splits], BEST_SINGLE)
    bests = [s.best_single for s in splits]
    members = [m for m in splits[0].methods if m not in splits[0].methods_uncalibrated
               and m not in (BEST_SINGLE, "best_single_calibrated", SKLEARN_STACKING, DESLIB_KNORA_E)]
    conformal: list[dict[str, Any]] = []
    for e in splits[0].conformal:
        same = [c for s in splits for c in s.conformal if (c["alpha"], c["mondrian"]) == (e["alpha"], e["mondrian"])]
        cov, cov_sd = _mean_std([c["coverage"] for c in same])
        conformal.append({"alpha": e["alpha"], "mondrian": e["mondrian"], "randomized": e.get("randomized", False),
                          "coverage": cov, "coverage_std": cov_sd,
                          "coverage_se": cov_sd / math.sqrt(len(same)) if len(same) > 1 else math.nan,
                          **{k: _mean_std([c[k] for c in same])[0] for k in
                             ("mean_set_size", "coverage_deterministic", "mean_set_size_deterministic")
                             if k in e}})
    chosen = [s.confidence["measure"] for s in splits]
    confidence: dict[str, Any] = {"measure": max(set(chosen), key=chosen.count), "measure_per_split": chosen}
    for k, v in splits[0].confidence.items():
        if isinstance(v, float):
            confidence[k] = _mean_std([s.confidence[k] for s in splits])[0]
    for key in [k for k, v in splits[0].confidence.items() if k.startswith("measures") and isinstance(v, dict)]:
        confidence[key] = {m: _mean_std([s.confidence[key][m] for s in splits])[0] for m in splits[0].confidence[key]}
    return {
        "rows": data.n_rows,
        "rows_total": rows_total,
        "n_features": len(data.features),
        "positive_rate": float(data.y.mean()),
        "n_test": splits[0].n_test,
        "n_cal": splits[0].n_cal,
        "validated_strategy_per_split": [s.validated_pick for s in splits],
        "calibration_protocol": splits[0].calibration_protocol,
        "splits": len(splits),
        "best_single": max(set(bests), key=lambda b: (bests.count(b), -bests.index(b))),
        "best_single_per_split": bests,
        "default": splits[0].default,
        "members": members,
        "strategies": [m for m in splits[0].methods_uncalibrated if m not in (DEFAULT, VALIDATED_STRATEGY)],
        "methods": methods,
        "methods_uncalibrated": _aggregate_methods(uncal, BEST_SINGLE),
        "calibration": {k: _mean_std([s.calibration[k] for s in splits])[0] for k in splits[0].calibration},
        "conformal": conformal,
        "confidence": confidence,
        "timings_s": {k: float(sum(s.timings.get(k, 0.0) for s in splits)) for k in splits[0].timings},
        "failed": {k: v for s in splits for k, v in s.failed.items()},
    }


def summarise(datasets: dict[str, dict[str, Any]], coverage_key: str = "selective_accuracy_at_80") -> dict[str, Any]:
    """Cross-dataset summary and the goal checks.

    Parameters
    ----------
    datasets : dict
        Dataset name -> its JSON entry (:func:`aggregate_dataset`).
    coverage_key : str, default="selective_accuracy_at_80"
        Selective-accuracy key compared against its ``baseline_`` counterpart.

    Returns
    -------
    dict
        ``relative_log_loss_reduction``: method -> ``mean`` over datasets, ``worst_dataset``,
        ``worst``, ``per_dataset``; ``best_strategy`` (highest mean among strategies) and its
        mean; ``default``; ``goals`` (each ``goal``, ``holds``, ``detail``).

    Raises
    ------
    None
    """
    if not datasets:
        return {"relative_log_loss_reduction": {}, "best_strategy": None, "default": None, "goals": {}}
    entries = list(datasets.values())
    common = [m for m in entries[0]["methods"] if all(m in e["methods"] for e in entries)]
    rel: dict[str, dict[str, Any]] = {}
    for m in common:
        per = {n: e["methods"][m][REL_LL] for n, e in datasets.items()}
        finite = {n: v for n, v in per.items() if v is not None and math.isfinite(v)}
        worst = min(finite, key=lambda n: finite[n]) if finite else None
        rel[m] = {
            "mean": float(np.mean(list(finite.values()))) if finite else math.nan,
            # One near-separable dataset (log loss -> 0) can dominate the mean; the median and
            # the win count are read alongside it.
            "median": float(np.median(list(finite.values()))) if finite else math.nan,
            "wins": int(sum(v > 0 for v in finite.values())),
            "worst_dataset": worst,
            "worst": finite[worst] if worst else math.nan,
            "per_dataset": per,
        }
    strategies = [s for s in entries[0]["strategies"] if s in rel]
    best = max(strategies, key=lambda s: rel[s]["mean"] if math.isfinite(rel[s]["mean"]) else -math.inf, default=None)
    default = entries[0]["default"]
    goals: dict[str, dict[str, Any]] = {}
    d = rel.get(DEFAULT)
    if d is not None:
        goals["default_mean_ge_5pct"] = {
            "goal": "default: mean relative log-loss reduction vs best single >= 5%",
            "holds": bool(d["mean"] >= 0.05), "detail": f"{100 * d['mean']:+.1f}%"}
        bad = {n: v for n, v in d["per_dataset"].items() if v is not None and v < -0.01}
        goals["default_never_worse_than_1pct"] = {
            "goal": "default: worse than best single by > 1% on no dataset",
            "holds": not bad, "detail": ", ".join(f"{n} {100 * v:+.1f}%" for n, v in bad.items()) or "none"}
        for other in (SKLEARN_STACKING, DESLIB_KNORA_E):
            if other in rel:
                goals[f"default_beats_{other}"] = {
                    "goal": f"default beats {other} on average",
                    "holds": bool(d["mean"] > rel[other]["mean"]),
                    "detail": f"{100 * d['mean']:+.1f}% vs {100 * rel[other]['mean']:+.1f}%"}
    from stream_ensemble.bench.report import ECE_TOLERANCE

    ece_bad = [n for n, e in datasets.items()
               if not e["calibration"]["ece_after"] <= e["calibration"]["ece_before"] + ECE_TOLERANCE]
    goals["ece_after_le_before"] = {"goal": "per dataset: ECE after calibration <= before",
                                    "holds": not ece_bad, "detail": ", ".join(ece_bad) or "all datasets"}
    # The standard error of the mean coverage is given alongside: binomial on the test rows plus
    # the spread of a conformal threshold fit on n_cal rows, over the splits. On the small
    # datasets +-2 points is within sampling noise of an exact method.
    def _se(c: dict[str, Any], e: dict[str, Any]) -> float:
        inv = 1.0 / max(e.get("n_test", 0), 1) + 1.0 / max(e.get("n_cal", 0) + 1, 1)
        return math.sqrt(c["alpha"] * (1 - c["alpha"]) * inv / max(e.get("splits", 1), 1))

    cov_bad = [f"{n} α={c['alpha']}{' Mondrian' if c['mondrian'] else ''}: {c['coverage']:.3f} "
               f"(s.e. {_se(c, e):.3f})"
               for n, e in datasets.items() for c in e["conformal"]
               if not abs(c["coverage"] - (1 - c["alpha"])) <= 0.02]
    goals["conformal_coverage_within_2pts"] = {
        "goal": "per dataset: conformal coverage within ±2 points of 1-α",
        "holds": not cov_bad, "detail": "; ".join(cov_bad) or "all datasets and levels"}
    sel_bad = [n for n, e in datasets.items()
               if not e["confidence"].get(coverage_key, -1.0) >= e["confidence"].get(f"baseline_{coverage_key}", 2.0)]
    goals["selective_accuracy_ge_baseline"] = {
        "goal": "per dataset: selective accuracy at 80% >= baseline (raw soft voting top probability)",
        "holds": not sel_bad, "detail": ", ".join(sel_bad) or "all datasets"}
    conf_names = list(entries[0]["confidence"].get("measures", {}))
    conf_mean = {c: _mean_std([e["confidence"]["measures"][c] for e in entries])[0] for c in conf_names}
    return {
        "relative_log_loss_reduction": rel,
        "best_strategy": best,
        "best_strategy_mean": rel[best]["mean"] if best else math.nan,
        "default": default,
        "confidence_error_auroc_mean": conf_mean,
        "best_confidence_measure": max(conf_mean, key=lambda c: conf_mean[c] if math.isfinite(conf_mean[c]) else -1.0)
        if conf_mean else None,
        "goals": goals,
    }


def _split_pool(jobs: int) -> Any:
    """A process pool for the splits, or None for ``jobs == 1``.

    ``spawn``: a fresh interpreter per worker, so no lock or BLAS thread state is inherited.
    """
    if jobs <= 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_limit_threads)


def _limit_threads() -> None:
    # One BLAS/OpenMP thread per worker process: the jobs are the parallelism.
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    threadpool_limits(1)


def run_accuracy(
    loaders: Sequence[Dataset | Callable[[], Dataset]],
    config: BenchConfig,
    *,
    progress: bool = True,
    max_rows: int | None = None,
    on_dataset: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole benchmark (module docstring) and return the JSON document.

    Parameters
    ----------
    loaders : sequence of Dataset or zero-argument callables returning one
        Callables are called one at a time, so only one dataset is in memory.
    config : BenchConfig
    progress : bool, default=True
        tqdm bar over (dataset, split) on stderr.
    max_rows : int, optional
        Stratified, seeded subsample of any larger dataset (rows used are reported).
    on_dataset : callable, optional
        Called with ``(name, entry)`` as each dataset finishes (e.g. to save partial results).

    Returns
    -------
    dict
        ``datasets``, ``summary``, ``protocol``, ``elapsed_s`` (strict-JSON-ready except for
        NaN, which the CLI turns into ``null``).

    Raises
    ------
    ConfigError
        Unknown strategy, or a dataset too small for the protocol.
    ModelPoolError
        No member could be fitted.
    """
    from tqdm import tqdm

    from stream_ensemble.bench.datasets import subsample

    t0 = time.perf_counter()
    strategies = check_strategies(config)
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(loaders) * config.splits, file=sys.stderr, disable=not progress, unit="split")
    pool = _split_pool(config.jobs)
    splits_run: dict[str, int] = {}
    try:
        with threadpool_limits(1):
            for loader in loaders:
                data = loader() if callable(loader) else loader
                rows_total = data.n_rows
                if max_rows is not None:
                    data = subsample(data, max_rows, config.random_state)
                n_splits = config.splits_for(len(stratified_split(data.y, config.fractions, config.random_state)[2]))
                splits_run[data.name] = n_splits
                if n_splits > config.splits:
                    bar.total += n_splits - config.splits
                    bar.refresh()
                bar.set_description(f"{data.name} ({n_splits} splits)")
                splits = []
                if pool is None:
                    for r in range(n_splits):
                        splits.append(run_split(data, r, config, strategies))
                        bar.update(1)
                else:
                    futures = [pool.submit(run_split, data, r, config, strategies) for r in range(n_splits)]
                    for f in futures:  # results in split order, whatever finishes first
                        splits.append(f.result())
                        bar.update(1)
                results[data.name] = aggregate_dataset(data, rows_total, splits)
                if on_dataset is not None:
                    on_dataset(data.name, results[data.name])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()
    specs = config.pool(config.random_state)
    protocol = {
        "description": (
            f"{config.splits} repeated stratified splits per dataset (seed {config.random_state} + r; more on "
            f"a small dataset, until its test parts total at least {config.min_test_rows} rows): "
            f"fit {config.fractions[0]:.0%} / calibration-validation {config.fractions[1]:.0%} / "
            f"test {config.fractions[2]:.0%}; encoder fit on the fit part; members fit with 5-fold "
            "out-of-fold predictions on the fit part; strategies fit on the OOF predictions; "
            "calibrator and conformal sets as build() fits them (see calibration_protocol); "
            "best_single = member with the lowest calibration-validation log loss; metrics on test."
        ),
        "splits": config.splits,
        "min_test_rows": config.min_test_rows,
        "splits_per_dataset": splits_run,
        "fractions": list(config.fractions),
        "random_state": config.random_state,
        "pool": [s.model_id for s in specs],
        "strategies": strategies,
        "max_rows": max_rows,
        "conformal_alphas": list(config.alphas),
        "selective_coverage": config.coverage,
        "log_loss_clip": _LL_CLIP,
        "probabilities": "strategies: calibrated (uncalibrated in methods_uncalibrated); members and baselines: raw",
    }
    return {
        "datasets": results,
        "summary": summarise(results, f"selective_accuracy_at_{round(config.coverage * 100)}"),
        "protocol": protocol,
        "elapsed_s": time.perf_counter() - t0,
    }
