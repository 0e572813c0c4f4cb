"""Render an accuracy-benchmark result (the JSON of :mod:`stream_ensemble.bench.accuracy`).

:func:`render_markdown` gives one table per dataset (methods x metrics, best value bold), the
summary table of relative log-loss reduction against the best single model, and the
calibration / conformal / confidence tables. :func:`render_png` draws a grouped bar chart of
that reduction per dataset and method (Agg backend, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Methods of the summary table and chart, in this order (those absent from a result are skipped).
KEY_METHODS: tuple[str, ...] = (
    "default", "distilled", "validated_strategy", "boosting", "bnb_stacking", "stacking_all", "caruana", "bnb_weighted",
    "bnb_soft", "sklearn_stacking", "deslib_knora_e", "soft_voting_all",
)  # fmt: skip
_HIGHER_IS_BETTER = {"log_loss": False, "accuracy": True, "roc_auc": True, "brier": False, "ece": False}
_REL = "relative_log_loss_reduction"
#: Served probabilities are clipped to [1e-6, 1 - 1e-6] whatever the calibration map (even the
#: identity). That moves each row's confidence by at most 1e-6, hence the ECE by at most 1e-6:
#: "after <= before" is checked up to that bound, which is the clip's, not the calibrator's.
ECE_TOLERANCE = 1e-6
# Bars beyond this are clipped (and labelled) so one terrible method does not flatten the rest.
_CLIP_LOW = -0.5


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100.0 * float(x):+.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _key_methods(result: Mapping[str, Any]) -> list[str]:
    per = result["datasets"].values()
    return [m for m in KEY_METHODS if any(m in d["methods"] for d in per)]


def _calibration_protocol(datasets: Mapping[str, Any]) -> str:
    found = {d.get("calibration_protocol") for d in datasets.values()} - {None, ""}
    return "; ".join(sorted(str(f) for f in found)) or "see the JSON"


def _dataset_table(name: str, d: Mapping[str, Any]) -> list[str]:
    methods: Mapping[str, Mapping[str, Any]] = d["methods"]
    metrics = [m for m in _HIGHER_IS_BETTER if any(m in v for v in methods.values())]
    best: dict[str, float] = {}
    for m in metrics:
        vals = [v[m] for v in methods.values() if isinstance(v.get(m), float) and math.isfinite(v[m])]
        if vals:
            best[m] = max(vals) if _HIGHER_IS_BETTER[m] else min(vals)
    rows = []
    for method, v in methods.items():
        cells = [f"`{method}`"]
        for m in metrics:
            s = _fmt(v.get(m))
            std = v.get(f"{m}_std")
            if isinstance(std, float) and math.isfinite(std) and std > 0:
                s += f" ± {std:.3f}"
            cells.append(f"**{s}**" if m in best and v.get(m) == best[m] else s)
        cells.append(_pct(v.get(_REL)))
        rows.append(cells)
    extra = f"{d.get('rows', '?')} rows"
    if d.get("rows_total") and d.get("rows_total") != d.get("rows"):
        extra += f" (stratified subsample of {d['rows_total']})"
    head = [
        f"### {name}",
        "",
        f"{extra}; best single (chosen on validation): `{d['best_single']}`; default strategy: "
        f"`{d['default']}`.",
        "",
    ]
    timings = d.get("timings_s", {})
    if timings:
        head += ["Time over all splits: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ".", ""]
    failed = d.get("failed", {})
    if failed:
        head += ["Not fitted: " + "; ".join(f"`{k}` ({v})" for k, v in failed.items()) + ".", ""]
    return head + _table(["method", *metrics, "rel. log-loss reduction vs best single"], rows) + [""]


def render_markdown(result: Mapping[str, Any]) -> str:
    """Markdown report of one benchmark result.

    Parameters
    ----------
    result : mapping
        The JSON document written by the accuracy benchmark.

    Returns
    -------
    str
        The report.

    Raises
    ------
    KeyError
        If ``result`` lacks the contract keys (``datasets``, ``summary``, ``protocol``).
    """
    datasets: Mapping[str, Any] = result["datasets"]
    summary: Mapping[str, Any] = result["summary"]
    protocol: Mapping[str, Any] = result["protocol"]
    keys = _key_methods(result)
    lines = [
        "# Accuracy benchmark",
        "",
        f"Protocol: {protocol.get('description', '')}",
        "",
        "Strategies are reported on their **calibrated** probabilities (calibrator as `build` "
        f"fits it: {_calibration_protocol(datasets)}); members, `best_single`, `sklearn_stacking` and "
        "`deslib_knora_e` on their raw probabilities. The uncalibrated strategy numbers are in "
        "the JSON (`methods_uncalibrated`). Log loss clips probabilities at 1e-15. Values are "
        f"means over {protocol.get('splits', '?')} splits (± std). Total time "
        f"{_fmt(result.get('elapsed_s'), 0)} s.",
        "",
        "## Summary: relative log-loss reduction vs the best single model",
        "",
        "Positive = lower test log loss than the member with the best validation log loss. Per "
        "dataset: (ll(best_single) - ll(method)) / ll(best_single) on the log losses averaged over "
        "the splits (the mean of per-split ratios is in the JSON as "
        "`relative_log_loss_reduction_split_mean`; near-zero losses make it swing).",
        "",
    ]
    rel = summary["relative_log_loss_reduction"]
    rows = [[name] + [_pct(rel.get(m, {}).get("per_dataset", {}).get(name)) for m in keys] for name in datasets]
    rows.append(["**mean**"] + [f"**{_pct(rel.get(m, {}).get('mean'))}**" for m in keys])
    rows.append(["worst dataset"] + [
        f"{rel.get(m, {}).get('worst_dataset', '–')} ({_pct(rel.get(m, {}).get('worst'))})" for m in keys
    ])
    lines += _table(["dataset", *[f"`{m}`" for m in keys]], rows) + [""]
    ranking = sorted(
        ((m, v["mean"]) for m, v in rel.items() if isinstance(v.get("mean"), float) and math.isfinite(v["mean"])),
        key=lambda t: -t[1],
    )
    lines += ["All methods, mean over datasets:", ""]
    n_sets = len(datasets)
    lines += _table(
        ["method", "mean", "median", f"datasets better than best single (of {n_sets})", "worst dataset"],
        [[f"`{m}`", _pct(v), _pct(rel[m].get("median")), str(rel[m].get("wins", "–")),
          f"{rel[m].get('worst_dataset')} ({_pct(rel[m].get('worst'))})"] for m, v in ranking],
    ) + [""]
    lines += [
        f"Best strategy on average: `{summary.get('best_strategy')}` "
        f"({_pct(summary.get('best_strategy_mean'))}); default: `{summary.get('default')}`.",
        "",
    ]
    goals = summary.get("goals", {})
    if goals:
        lines += ["## Goals", ""]
        lines += _table(["goal", "holds", "detail"], [
            [g["goal"], ("yes" if g.get("holds_strict", True) else "yes, within noise") if g["holds"] else "**no**",
             g.get("detail", "")] for g in goals.values()
        ]) + [""]
        cov = goals.get("conformal_coverage_within_2pts", {})
        if "class_detail" in cov:  # bench.accuracy.coverage: Mondrian per class, and pooled over datasets
            pooled = ", ".join(f"{k} {100 * v['mean_offset']:+.2f} ± {100 * v['se']:.2f}" for k, v in cov["pooled"].items())
            lines += [f"Coverage of Mondrian sets per class: {cov['class_detail']}. Pooled over the datasets "
                      f"(inverse-variance mean offset from 1-α ± s.e., points): {pooled}.", ""]
    lines += _leaderboard(datasets)
    lines += _distilled_table(datasets, summary.get("distilled", {}))
    lines += _issue4_tables(datasets)
    lines += ["## Per dataset", ""]
    for name, d in datasets.items():
        lines += _dataset_table(name, d)
    return "\n".join(lines) + "\n"


def _ll(d: Mapping[str, Any], method: str | None) -> str:
    return _fmt(d["methods"].get(method, {}).get("log_loss")) if method else "–"


def _leaderboard(datasets: Mapping[str, Any]) -> list[str]:
    """AutoGluon-style columns: best single, served default, best ensemble, outside baselines."""
    rows = []
    for name, d in datasets.items():
        best_ens = d.get("best_ensemble")
        rows.append([
            name, _ll(d, "best_single"), _ll(d, "default"),
            f"{_ll(d, best_ens)} (`{best_ens}`)" if best_ens else "–",
            _ll(d, "caruana"), _ll(d, "sklearn_stacking"),
            _fmt(d.get("default_cost_ms_per_1k"), 2), _fmt(d.get("timings_s", {}).get("build", math.nan) / max(d.get("splits", 1), 1), 1),
        ])
    lines = ["## Test log loss: best single, default, best ensemble", "",
             "`best single` = the member with the lowest validation log loss; `default` = the strategy "
             "`build` chose per split on the calibration part; `best ensemble` = the strategy with the "
             "lowest mean *test* log loss (an oracle for reference, never served). Serving cost = summed "
             "member predict time of the default's selection (ms per 1,000 rows, one thread); train s = "
             "mean `build` time per split (search + OOF fits + strategies).", ""]
    lines += _table(["dataset", "best single", "default", "best ensemble (oracle)", "caruana", "sklearn stacking",
                     "serving cost ms/1k", "train s / split"], rows) + [""]
    lines += ["Per-split picks (all chosen on validation rows, never test):", ""]
    rows = []
    for name, d in datasets.items():
        cals = d.get("calibration_per_split", [])
        per_split = d.get("test_log_loss_per_split", {})
        rows.append([
            name, ", ".join(d.get("best_single_per_split", [])), ", ".join(d.get("default_per_split", [])),
            " / ".join(f"{_fmt(a)} vs {_fmt(b)}" for a, b in zip(per_split.get("default", []),
                                                                 per_split.get("best_single", []), strict=False)) or "–",
            ", ".join(str(c.get("runner_up")) for c in d.get("strategy_choice_per_split", [])),
            ", ".join(d.get("confidence", {}).get("measure_per_split", [])),
            ", ".join(str(c.get("method")) for c in cals),
        ])
    lines += _table(["dataset", "best single", "default", "default vs best single, test log loss per split", "runner-up",
                     "confidence", "calibration map"], rows) + [""]
    notes = [f"- {name}, split {r}: {c.get('reason')}" for name, d in datasets.items()
             for r, c in enumerate(d.get("calibration_per_split", [])) if c.get("method") == "none"]
    if notes:
        lines += ["Where the calibrator kept the identity, and why (cross-validated on the OOF rows it is fit on):",
                  "", *notes, ""]
    return lines


def _distilled_table(datasets: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    """One fast student per split, fit to the default's OOF probabilities: gain kept and cost."""
    rows = []
    for name, d in datasets.items():
        e = d.get("distilled")
        if not e:
            continue
        kept = e.get("kept_share")
        rows.append([
            name, _fmt(e.get("best_single_log_loss")), _fmt(e.get("teacher_log_loss")), _fmt(e.get("log_loss")),
            f"{100 * kept:.0f}%" if isinstance(kept, float) and math.isfinite(kept) else "– (no gain)",
            _fmt(e.get("student_ms_per_1k"), 2), _fmt(e.get("teacher_ms_per_1k"), 2), _fmt(e.get("cost_ratio"), 3),
            _fmt(e.get("decision_agreement"), 3),
        ])
    if not rows:
        return []
    student = next((d["distilled"].get("student") for d in datasets.values() if d.get("distilled")), "?")
    lines = ["## Distilled student", "",
             f"One `{student}` per split fit to the default's calibrated out-of-fold probabilities of the fit "
             "part, calibrated on the calibration part, measured on test. Kept = (ll(best single) - "
             "ll(student)) / (ll(best single) - ll(default)) on the split-mean log losses; cost = predict time "
             "per 1,000 rows (student vs the members the default runs, timed in the same moment), ratio = "
             "student / default; agreement = share of test rows decided as the default decides.", ""]
    lines += _table(["dataset", "best single", "default", "distilled", "kept", "student ms/1k", "default ms/1k",
                     "cost ratio", "agreement"], rows) + [""]
    if summary:
        lines += [f"Kept share: mean {_fmt(summary.get('kept_share_mean'), 3)}, median "
                  f"{_fmt(summary.get('kept_share_median'), 3)} (datasets where the default has a gain; none: "
                  f"{', '.join(summary.get('no_teacher_gain', [])) or '–'}); cost ratio mean "
                  f"{_fmt(summary.get('cost_ratio_mean'), 3)}, max {_fmt(summary.get('cost_ratio_max'), 3)}.", ""]
    return lines


def _issue4_tables(datasets: Mapping[str, Any]) -> list[str]:
    lines = ["## Calibration, conformal sets, confidence (default strategy)", ""]
    rows = []
    for name, d in datasets.items():
        c = d.get("calibration", {})
        ok = c.get("ece_after", math.inf) <= c.get("ece_before", -math.inf) + ECE_TOLERANCE
        rows.append([name, _fmt(c.get("ece_before")), _fmt(c.get("ece_after")), "yes" if ok else "**no**"])
    lines += ["ECE on test before and after calibration:", ""]
    lines += _table(["dataset", "ECE before", "ECE after", "after ≤ before"], rows) + [""]
    levels = sorted({(e["alpha"], bool(e.get("mondrian"))) for d in datasets.values() for e in d.get("conformal", [])})
    if levels:
        header = ["dataset"] + [
            f"α={a} {'Mondrian' if m else 'plain'} (target {1 - a:.2f})" for a, m in levels
        ]
        rows = []
        for name, d in datasets.items():
            by = {(e["alpha"], bool(e.get("mondrian"))): e for e in d.get("conformal", [])}
            cells = [name]
            for lv in levels:
                e = by.get(lv)
                if e is None:
                    cells.append("–")
                    continue
                off = abs(e["coverage"] - (1 - lv[0])) > 0.02
                se = e.get("coverage_se")
                s = f"{e['coverage']:.3f}" + (f" ± {se:.3f}" if isinstance(se, float) and math.isfinite(se) else "")
                s += f" (size {e['mean_set_size']:.2f})"
                if "coverage_deterministic" in e and e.get("randomized"):
                    s += f"; deterministic {e['coverage_deterministic']:.3f}"
                cells.append(f"**{s}**" if off else s)
            rows.append(cells)
        lines += ["Conformal coverage on test ± its standard error over the splits (mean set size; the "
                  "served sets are randomized when a deterministic figure follows); bold = more than "
                  "2 points off target:", ""]
        lines += _table(header, rows) + [""]
    measures = sorted({k for d in datasets.values() for k in d.get("confidence", {}).get("measures", {})})
    rows = []
    for name, d in datasets.items():
        c = d.get("confidence", {})
        ok = c.get("selective_accuracy_at_80", -1.0) >= c.get("baseline_selective_accuracy_at_80", 2.0)
        served_ok = c.get("error_auroc", -1.0) >= c.get("top_proba_error_auroc", 2.0)
        rows.append([
            name, _fmt(c.get("selective_accuracy_at_80")), _fmt(c.get("baseline_selective_accuracy_at_80")),
            "yes" if ok else "**no**", _fmt(c.get("error_auroc")) + ("" if served_ok else " **< top_proba**"),
        ] + [_fmt(c.get("measures", {}).get(m)) for m in measures])
    means = {}
    for m in measures:
        vals = [d.get("confidence", {}).get("measures", {}).get(m) for d in datasets.values()]
        finite = [v for v in vals if isinstance(v, float) and math.isfinite(v)]
        means[m] = sum(finite) / len(finite) if finite else math.nan
    if measures:
        rows.append(["**mean**", "", "", "", ""] + [f"**{_fmt(means[m])}**" for m in measures])
    lines += [
        "Selective accuracy at 80% coverage (served confidence, chosen per split on the calibration "
        "part) vs the baseline (raw top probability of soft voting over all members); served error "
        "AUROC on test and that of each confidence measure on the same served probabilities:",
        "",
    ]
    lines += _table(
        ["dataset", "sel. acc@80", "baseline", "≥ baseline", "error AUROC", *[f"`{m}`" for m in measures]], rows
    ) + [""]
    return lines


def render_png(result: Mapping[str, Any], path: str | Path) -> Path:
    """Grouped bar chart of the relative log-loss reduction vs the best single model.

    Parameters
    ----------
    result : mapping
        The benchmark JSON document.
    path : str or Path
        Where to write the PNG.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    KeyError
        If ``result`` lacks the contract keys.
    OSError
        If the file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rel = result["summary"]["relative_log_loss_reduction"]
    names = list(result["datasets"]) + ["mean"]
    methods = [m for m in _key_methods(result) if m in rel]
    values = np.array([
        [rel[m].get("per_dataset", {}).get(n, np.nan) if n != "mean" else rel[m].get("mean", np.nan) for n in names]
        for m in methods
    ], dtype=float) * 100.0
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(11.0, 1.3 * len(names) + 4), 7.0))
    # one distinct colour per method: tab10 repeats after 10 methods, tab20 does not
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    low = _CLIP_LOW * 100.0
    for k, m in enumerate(methods):
        v = values[k]
        shown = np.clip(np.nan_to_num(v, nan=0.0), low, None)
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, shown, width, label=m, color=cmap(k % cmap.N), edgecolor="black" if m == "default" else None,
               linewidth=1.2 if m == "default" else 0)
        for xi, vi in zip(pos, v):
            if math.isfinite(vi) and vi < low:
                ax.text(xi, low + 1, f"{vi:.0f}%", rotation=90, ha="center", va="bottom", fontsize=7,
                        color="black", bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "linewidth": 0})
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axvspan(len(names) - 1.5, len(names) - 0.5, color="0.92", zorder=0)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    top = np.nanmax(values) if np.isfinite(values).any() else 10.0
    ax.set_ylim(low - 2, max(top, 5.0) + 5)
    ax.set_ylabel("test log-loss reduction vs best single model (%)")
    ax.set_title("Relative log-loss reduction vs the best single member (chosen on validation)\n"
                 f"bars below {low:.0f}% are clipped and labelled")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="method")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
