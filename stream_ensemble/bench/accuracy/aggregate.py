"""Aggregating splits into per-dataset results, and datasets into the summary and goals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from stream_ensemble.bench.accuracy.config import (
    BEST_SINGLE,
    DEFAULT,
    DESLIB_KNORA_E,
    DISTILLED,
    METRIC_NAMES,
    REL_LL,
    SKLEARN_STACKING,
    VALIDATED_STRATEGY,
)
from stream_ensemble.bench.accuracy.coverage import coverage_check
from stream_ensemble.bench.accuracy.distilled import aggregate_distilled, summarise_distilled
from stream_ensemble.bench.accuracy.noise import Z_NOISE, mean_se
from stream_ensemble.bench.accuracy.split import SplitResult
from stream_ensemble.core.data import Dataset
from stream_ensemble.core.evaluation import relative_reduction
from stream_ensemble.core.strategies import StrategyName

CARUANA = StrategyName.CARUANA.value


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


def _best_ensemble(methods: dict[str, dict[str, float]], strategies: Sequence[str]) -> str | None:
    """Strategy with the lowest mean *test* log loss: an oracle column (AutoGluon's "best" row), never served."""
    finite = [m for m in strategies if m in methods and math.isfinite(methods[m]["log_loss"])]
    return min(finite, key=lambda m: methods[m]["log_loss"]) if finite else None


def _aggregate_noise(splits: Sequence[SplitResult]) -> dict[str, float]:
    """Mean of each paired test gap over the splits and the SE of that mean (``bench.accuracy.noise``)."""
    keys = [k for k in splits[0].noise if not k.endswith("_se")] if splits[0].noise else []
    out: dict[str, float] = {}
    for k in keys:
        out[k] = _mean_std([s.noise[k] for s in splits])[0]
        out[f"{k}_se"] = mean_se([s.noise.get(f"{k}_se", math.nan) for s in splits])
    return out


def aggregate_dataset(data: Dataset, rows_total: int, splits: Sequence[SplitResult],
                      student: str | None = None) -> dict[str, Any]:
    """The JSON entry of one dataset from its split results.

    Parameters
    ----------
    data : Dataset
        The rows actually used.
    rows_total : int
        Rows before any ``max_rows`` subsample.
    splits : sequence of SplitResult
    student : str, optional
        Student family of the ``distilled`` entry (reported only).

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
               and m not in (BEST_SINGLE, "best_single_calibrated", SKLEARN_STACKING, DESLIB_KNORA_E, DISTILLED)]
    conformal: list[dict[str, Any]] = []
    for e in splits[0].conformal:
        same = [c for s in splits for c in s.conformal if (c["alpha"], c["mondrian"]) == (e["alpha"], e["mondrian"])]
        cov, cov_sd = _mean_std([c["coverage"] for c in same])
        conformal.append({"alpha": e["alpha"], "mondrian": e["mondrian"], "randomized": e.get("randomized", False),
                          "coverage": cov, "coverage_std": cov_sd,
                          "coverage_se": cov_sd / math.sqrt(len(same)) if len(same) > 1 else math.nan,
                          **{k: _mean_std([c[k] for c in same])[0] for k in
                             ("mean_set_size", "coverage_deterministic", "mean_set_size_deterministic")
                             if k in e},
                          # per class: mean over splits of the coverage and of the row counts
                          **{k: [_mean_std([c[k][j] for c in same])[0] for j in range(len(e[k]))]
                             for k in ("class_coverage", "n_cal_class", "n_test_class") if k in e}})
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
        "default_per_split": [s.strategy_choice.get("chosen", s.default) for s in splits],
        "strategy_choice_per_split": [s.strategy_choice for s in splits],
        # Test log loss of every method per split: what each split's pick actually cost.
        "test_log_loss_per_split": {m: [s.methods[m]["log_loss"] for s in splits] for m in methods},
        "calibration_per_split": [{k: s.calibration.get(k) for k in ("method", "reason")} for s in splits],
        "default_cost_ms_per_1k": _mean_std([s.default_cost_ms_per_1k for s in splits])[0],
        "members_cost": {m: {k: _mean_std([s.members_cost[m][k] for s in splits if m in s.members_cost])[0]
                             for k in ("fit_s", "cost_ms_per_1k")} for m in splits[0].members_cost},
        "search_per_split": [s.search for s in splits],
        "best_ensemble": _best_ensemble(methods, [m for m in splits[0].methods_uncalibrated
                                                  if m not in (DEFAULT, VALIDATED_STRATEGY)]),
        "calibration_protocol": splits[0].calibration_protocol,
        "splits": len(splits),
        "best_single": max(set(bests), key=lambda b: (bests.count(b), -bests.index(b))),
        "best_single_per_split": bests,
        "default": splits[0].default,
        "members": members,
        "strategies": [m for m in splits[0].methods_uncalibrated if m not in (DEFAULT, VALIDATED_STRATEGY)],
        "methods": methods,
        "methods_uncalibrated": _aggregate_methods(uncal, BEST_SINGLE),
        "calibration": {k: _mean_std([s.calibration[k] for s in splits])[0] for k in ("ece_before", "ece_after")},
        "conformal": conformal,
        "confidence": confidence,
        "timings_s": {k: float(sum(s.timings.get(k, 0.0) for s in splits)) for k in splits[0].timings},
        "failed": {k: v for s in splits for k, v in s.failed.items()},
        "noise": _aggregate_noise(splits),
        "distilled": aggregate_distilled(
            methods, [s.distilled for s in splits if s.distilled],
            [(s.methods[BEST_SINGLE]["log_loss"], s.methods[DEFAULT]["log_loss"], s.methods[DISTILLED]["log_loss"])
             for s in splits if DISTILLED in s.methods], student),
    }


def _noise_note(entry: dict[str, Any], key: str) -> str:
    """`` (gap ± s.e.: within/beyond noise)`` for a per-dataset paired test gap, or ``""``."""
    gap, se = entry.get("noise", {}).get(key, math.nan), entry.get("noise", {}).get(f"{key}_se", math.nan)
    if not (math.isfinite(gap) and math.isfinite(se)):
        return ""
    return f" (log-loss gap {gap:+.4f}, s.e. {se:.4f}: {'beyond' if gap > Z_NOISE * se else 'within'} test noise)"


def _selective_cause(conf: dict[str, Any], key: str) -> str:
    """Whether the served measure or the served probabilities hold selective accuracy back.

    ``"; served top_proba on 3/3 splits, best measure on test 0.808 < baseline 0.812"``: when
    even the measure that was best on *test* stays behind the baseline, no choice of measure
    closes the gap -- the served probabilities (strategy) rank or decide worse than soft voting's.
    """
    per = conf.get("measure_per_split", [])
    on_test = conf.get(f"measures_{key}", {})
    if not per or not on_test:
        return ""
    best = max(on_test, key=lambda m: on_test[m])
    base = conf.get(f"baseline_{key}", math.nan)
    verdict = "<" if on_test[best] < base else ">="
    return (f"; served {conf['measure']} on {per.count(conf['measure'])}/{len(per)} splits, best measure on test "
            f"{best} {on_test[best]:.4f} {verdict} baseline {base:.4f}")


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
            "holds": not bad,
            "detail": ", ".join(f"{n} {100 * v:+.1f}%{_noise_note(datasets[n], 'default_minus_best_single_log_loss')}"
                                for n, v in bad.items()) or "none"}
        for other in (SKLEARN_STACKING, DESLIB_KNORA_E):
            if other in rel:
                goals[f"default_beats_{other}"] = {
                    "goal": f"default beats {other} on average",
                    "holds": bool(d["mean"] > rel[other]["mean"]),
                    "detail": f"{100 * d['mean']:+.1f}% vs {100 * rel[other]['mean']:+.1f}%"}
        if CARUANA in rel:  # issue 13: the per-ensemble choice must not lose to one fixed strategy
            goals["default_ge_caruana"] = {
                "goal": "default: mean relative log-loss reduction vs best single >= caruana's (same pool)",
                "holds": bool(d["mean"] >= rel[CARUANA]["mean"]),
                "detail": f"{100 * d['mean']:+.1f}% vs {100 * rel[CARUANA]['mean']:+.1f}%"}
    from stream_ensemble.bench.report import ECE_TOLERANCE

    ece_bad = [n for n, e in datasets.items()
               if not e["calibration"]["ece_after"] <= e["calibration"]["ece_before"] + ECE_TOLERANCE]
    goals["ece_after_le_before"] = {"goal": "per dataset: ECE after calibration <= before",
                                    "holds": not ece_bad, "detail": ", ".join(ece_bad) or "all datasets"}
    # Coverage: per check with a Bonferroni bar, and pooled over datasets (bench.accuracy.coverage).
    goals["conformal_coverage_within_2pts"] = coverage_check(datasets)
    sel_miss, sel_bad = [], []
    for n, e in datasets.items():
        if e["confidence"].get(coverage_key, -1.0) >= e["confidence"].get(f"baseline_{coverage_key}", 2.0):
            continue
        gap = e.get("noise", {}).get("selective_minus_baseline", math.nan)
        se = e.get("noise", {}).get("selective_minus_baseline_se", math.nan)
        beyond = not gap >= -Z_NOISE * se  # NaN (no SE): judged strictly
        sel_miss.append(f"{n} {100 * gap:+.2f} pts (s.e. {100 * se:.2f}: {'beyond' if beyond else 'within'} noise"
                        f"{_selective_cause(e['confidence'], coverage_key)})")
        if beyond:
            sel_bad.append(n)
    goals["selective_accuracy_ge_baseline"] = {
        "goal": "per dataset: selective accuracy at 80% >= baseline (raw soft voting top probability), or "
                f"behind by less than {Z_NOISE} paired bootstrap s.e. on the test rows",
        "holds": not sel_bad, "holds_strict": not sel_miss, "detail": "; ".join(sel_miss) or "all datasets"}
    conf_bad = [f"{n} {e['confidence'].get('error_auroc', math.nan):.4f} < {e['confidence'].get('top_proba_error_auroc', math.nan):.4f}"
                for n, e in datasets.items()
                if not e["confidence"].get("error_auroc", -1.0) >= e["confidence"].get("top_proba_error_auroc", 2.0)]
    goals["served_confidence_auroc_ge_top_proba"] = {
        "goal": "per dataset: served confidence's test error AUROC >= top probability's (measure chosen on "
                "the calibration part)",
        "holds": not conf_bad, "detail": "; ".join(conf_bad) or "all datasets"}
    distilled, distilled_goal = summarise_distilled(datasets)
    if distilled_goal is not None:
        goals["distilled_keeps_95pct_cheaper"] = distilled_goal
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
        "distilled": distilled,
    }


#: Methods whose mean relative log-loss reduction the one-line summary quotes.
SUMMARY_METHODS = (DEFAULT, VALIDATED_STRATEGY, CARUANA, StrategyName.BEST_MEMBER.value, SKLEARN_STACKING)


def summary_line(result: dict[str, Any], file: str) -> dict[str, Any]:
    """The one-line JSON summary ``bench accuracy`` prints last (quoted in the README).

    Parameters
    ----------
    result : dict
        :func:`~stream_ensemble.bench.accuracy.run.run_accuracy`'s document.
    file : str
        Where the full JSON was written.

    Returns
    -------
    dict
        ``file``, ``<method>_mean`` (mean over datasets of the relative test log-loss reduction
        vs best single, 4 decimals) for :data:`SUMMARY_METHODS` present, ``goals_failed``
        (names) and ``goals_strict_failed`` (goals judged within noise whose plain tolerance
        was missed somewhere).
    """
    summary = result.get("summary", {})
    rel = summary.get("relative_log_loss_reduction", {})
    out: dict[str, Any] = {"file": file}
    for m in SUMMARY_METHODS:
        if m in rel and math.isfinite(rel[m]["mean"]):
            out[f"{m}_mean"] = round(float(rel[m]["mean"]), 4)
    goals = summary.get("goals", {})
    out["goals_failed"] = [k for k, g in goals.items() if not g["holds"]]
    out["goals_strict_failed"] = [k for k, g in goals.items() if g["holds"] and not g.get("holds_strict", True)]
    return out
