"""One split of the accuracy benchmark: every member, strategy and baseline on its test part.

The protocol is the package docstring's (:mod:`stream_ensemble.bench.accuracy`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from stream_ensemble.bench.accuracy.baselines import deslib_knora_e_proba, fit_sklearn_stacking
from stream_ensemble.bench.accuracy.config import (
    BEST_SINGLE,
    DEFAULT,
    DESLIB_KNORA_E,
    DISTILLED,
    METRIC_NAMES,
    SKLEARN_STACKING,
    VALIDATED_STRATEGY,
    BenchConfig,
)
from stream_ensemble.bench.accuracy.coverage import split_coverage
from stream_ensemble.bench.accuracy.noise import paired_loss_gap, selective_gap
from stream_ensemble.core.data import Dataset, stratified_split
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.evaluation import (
    error_auroc,
    evaluate,
    expected_calibration_error,
    log_loss,
    selective_accuracy,
)

FloatArray = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]

log = logging.getLogger("stream_ensemble.bench.accuracy")


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
    # evaluation.log_loss clips the true-class probability at 1e-15 (= LL_CLIP).
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
    noise : dict
        Paired test gaps and their standard errors (``bench.accuracy.noise``): the default's
        log loss minus the best single member's, its selective accuracy minus the baseline's.
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
    strategy_choice: dict[str, Any] = field(default_factory=dict)
    members_cost: dict[str, dict[str, float]] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    default_cost_ms_per_1k: float = math.nan
    distilled: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)


def calibration_note(calibrator: Any) -> dict[str, Any]:
    """Which map the default's calibrator chose and, when it is the identity, why.

    Parameters
    ----------
    calibrator : EnsembleCalibrator, TemperatureCalibrator or None

    Returns
    -------
    dict
        ``method`` and ``reason`` (words), plus the cross-validated scores behind it.
    """
    if calibrator is None:
        return {"method": "none", "reason": "calibration disabled"}
    if hasattr(calibrator, "temperature_"):
        t = float(calibrator.temperature_)
        return {"method": "temperature", "temperature": t,
                "reason": f"temperature {t:.3f} (OOF log loss {calibrator.log_loss_before_:.4f} -> "
                          f"{calibrator.log_loss_after_:.4f})"}
    method = str(calibrator.method_.value)
    scores = dict(getattr(calibrator, "cv_scores_", {}))
    eces = dict(getattr(calibrator, "cv_ece_", {}))
    out: dict[str, Any] = {"method": method, "cv_log_loss": scores, "cv_ece": eces}
    if method != "none":
        out["reason"] = f"{method}: cross-validated log loss {scores.get(method, math.nan):.4f} vs identity " \
                        f"{scores.get('none', math.nan):.4f}"
        return out
    others = {k: v for k, v in scores.items() if k != "none"}
    if not others:
        out["reason"] = "identity: too few rows of a class to cross-validate a map"
        return out
    why = []
    for k, v in others.items():
        worse_ece = eces.get(k, -math.inf) > eces.get("none", math.inf)
        why.append(f"{k} log loss {v:.4f} vs {scores['none']:.4f}"
                   + (", higher ECE" if worse_ece else ", gain within one SE" if v < scores["none"] else ""))
    if "isotonic" not in scores:
        why.append("isotonic not tried (< 1,000 rows)")
    out["reason"] = "identity kept (OOF probabilities already calibrated): " + "; ".join(why)
    return out


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
    from stream_ensemble.core.confidence.conformal import row_uniforms
    from stream_ensemble.core.confidence.uncertainty import (
        CONFIDENCE_MEASURES,
        DEFAULT_CONFIDENCE,
        ConfidenceName,
        uncertainty,
    )
    from stream_ensemble.core.members.oof import predict_members
    from stream_ensemble.core.training.builder import BuildConfig, build

    seed = config.random_state + r
    timer = _Timer(f"{data.name} split {r}")
    with timer.step("split+encode"):
        parts = stratified_split(data.y, config.fractions, seed)
        (Xf, yf), (Xc, yc), (Xt, yt) = _encode(data, parts)
    specs = config.pool(seed)
    with timer.step("build"):
        built = build(specs, Xf, yf, Xc, yc, BuildConfig(random_state=seed, search_budget_s=config.budget_s),
                      strategies=list(strategies),
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
        from stream_ensemble.core.confidence.calibration import EnsembleCalibrator

        if mf.n_classes == 2:
            cal_best = EnsembleCalibrator(random_state=seed).fit(P_cal[:, best, 1], yc)
            methods["best_single_calibrated"] = proba_metrics(cal_best.transform(P_test[:, best, 1]), yt)
        else:  # K classes: the calibrator build() uses for K > 2
            from stream_ensemble.core.confidence.temperature import TemperatureCalibrator

            cal_k = TemperatureCalibrator().fit(P_cal[:, best], yc)
            methods["best_single_calibrated"] = proba_metrics(cal_k.transform(P_test[:, best]), yt)
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
    run_default = built.strategies[built.default].required_members(np.ones(mf.n_models, dtype=bool))
    default_cost = float(mf.costs_ms_per_1k[run_default].sum())
    uncal[DEFAULT] = dict(uncal[built.default])
    # Not in the contract: would picking the strategy per ensemble on the calibration part (the
    # same held-out rows best_single is chosen on; never test) beat a fixed default?
    picked = _validated_pick(built, [n for n in strategies if n in scored])
    methods[VALIDATED_STRATEGY] = dict(methods[picked])
    uncal[VALIDATED_STRATEGY] = dict(uncal[picked])
    distilled: dict[str, float] = {}
    if config.student is not None:
        from stream_ensemble.bench.accuracy.distilled import distil_split

        with timer.step("distil"):
            p_student, distilled = distil_split(built, config.student, Xf, Xc, yc, Xt,
                                                scored[built.default]["proba"], seed)
            methods[DISTILLED] = proba_metrics(p_student, yt)
    if config.baselines:
        with timer.step("sklearn stacking"), threadpool_limits(1):
            stack = fit_sklearn_stacking(specs, Xf, yf)
            methods[SKLEARN_STACKING] = proba_metrics(stack.predict_proba(Xt), yt)
        with timer.step("deslib knora-e"), threadpool_limits(1):
            methods[DESLIB_KNORA_E] = proba_metrics(
                deslib_knora_e_proba(mf.estimators, Xc, yc, Xt, random_state=seed), yt)

    with timer.step("calibration/conformal/confidence"):
        d = scored[built.default]
        calibration: dict[str, Any] = {
            "ece_before": expected_calibration_error(d["raw_proba"], yt),
            "ece_after": expected_calibration_error(d["proba"], yt),
            **calibration_note(built.calibrators.get(built.default)),
        }
        # The served sets (randomized as built, scores on the unclipped calibrated probability),
        # the deterministic rule's coverage beside them; u is the worker's row hash.
        conformal = split_coverage(built.conformals[built.default], d["set_proba"], yt, row_uniforms(Xt),
                                   config.alphas)
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
        gap_ll, gap_ll_se = paired_loss_gap(d["proba"], P_test[:, best], yt)
        gap_sel, gap_sel_se = selective_gap(conf, correct, base_conf, base_correct, config.coverage, seed)
        noise = {"default_minus_best_single_log_loss": gap_ll, "default_minus_best_single_log_loss_se": gap_ll_se,
                 "selective_minus_baseline": gap_sel, "selective_minus_baseline_se": gap_sel_se}
        confidence = {
            "measure": measure,
            "error_auroc": error_auroc(conf, correct),
            # The served measure was chosen on the calibration part; this is its test figure
            # beside plain top probability of the same (served) probabilities.
            "top_proba_error_auroc": measures["top_proba"],
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
        strategy_choice=built.strategy_choice.as_dict() if built.strategy_choice else {"chosen": built.default},
        members_cost={n: {"fit_s": float(mf.fit_seconds[j]), "cost_ms_per_1k": float(mf.costs_ms_per_1k[j])}
                      for j, n in enumerate(mf.names)},
        search={k: v.as_dict() for k, v in built.search.items()},
        default_cost_ms_per_1k=default_cost,
        distilled=distilled,
        noise=noise,
    )


# --------------------------------------------------------------------------- aggregation
