"""``bench ab-sim``'s Markdown and PNG from :func:`stream_ensemble.bench.ab_sim.run`'s result."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _num(x: Any) -> str:
    return "–" if x is None else f"{x:.0f}"


def _design(g: dict[str, Any]) -> str:
    if g["mode"] == "split":
        return f"split, {g['challenger_fraction']:.0%} challenger"
    return f"shadow (paired), correlation {g['correlation']:g}"


def render_markdown(result: dict[str, Any]) -> str:
    c, aa, pw = result["config"], result["aa"], result["power"]
    h = pw["horizon"]
    one, two = pw["one_sided"], pw["two_sided"]
    lines = [
        "# bench ab-sim: peeking at a live experiment, and what the guardrail catches",
        "",
        f"{aa['experiments']} simulated A/A split experiments (accuracy {c['base_accuracy']} in both arms, "
        f"{c['challenger_fraction']:.0%} to the challenger), looked at every {c['look_every']} outcomes up to "
        f"{c['max_outcomes']} ({aa['looks']} looks), alpha = {c['alpha']}, mixture scale {c['mixture_scale']}.",
        "",
        "| test | false-positive rate | 95% interval |",
        "|---|---|---|",
        f"| fixed-horizon, peeked at every look | **{aa['fixed_horizon_peeked_fpr']:.3f}** | "
        f"{aa['fixed_horizon_peeked_fpr_ci95'][0]:.3f}–{aa['fixed_horizon_peeked_fpr_ci95'][1]:.3f} |",
        f"| anytime-valid (mixture SPRT), same looks | **{aa['sequential_fpr']:.3f}** | "
        f"{aa['sequential_fpr_ci95'][0]:.3f}–{aa['sequential_fpr_ci95'][1]:.3f} |",
        f"| fixed-horizon, read once at {c['max_outcomes']} | {aa['fixed_horizon_once_fpr']:.3f} | |",
        f"| guardrail false stops: fixed-horizon one-sided, peeked | {aa['fixed_one_sided_peeked_fpr']:.3f} | |",
        f"| guardrail false stops: one-sided anytime-valid (default) | **{aa['guardrail_one_sided_fpr']:.3f}** | "
        f"{aa['guardrail_one_sided_fpr_ci95'][0]:.3f}–{aa['guardrail_one_sided_fpr_ci95'][1]:.3f} |",
        f"| guardrail false stops: two-sided confidence sequence | {aa['guardrail_two_sided_fpr']:.3f} | |",
        "",
        f"Challenger {pw['effect']:g} (absolute) less accurate, same looks up to {pw['max_outcomes']} outcomes:",
        "",
        f"| guardrail test | stopped by {h} | stopped by {pw['max_outcomes']} | median outcomes needed | "
        "90th percentile | median over all runs | wrong direction |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in (("one-sided (default)", one), ("two-sided CS", two)):
        lines.append(f"| {name} | **{s['power_by_horizon']:.3f}** | {s['power']:.3f} | {_num(s['median_outcomes_needed'])} | "
                     f"{_num(s['p90_outcomes_needed'])} | {_num(s['median_outcomes_to_stop'])} | {s['wrong_direction']:.3f} |")
    lines += [
        f"| fixed-horizon one-sided, read once at {h} (upper reference) | {pw['fixed_one_sided_once_power']:.3f} "
        f"(theory {pw['fixed_one_sided_theory_power']:.3f}) | | | | | |",
        "",
        f"## By design: challenger {pw['effect']:g} less accurate than the champion",
        "",
        f"Power = share of the {aa['experiments']} experiments the guardrail stopped by {h} outcomes (shadow: "
        "events, each scored by both arms). The fixed-horizon one-sided test read once at "
        f"{h} is the most any level-{c['alpha']} test that stops by then can reach; where it is below 0.5, "
        f"\"most runs by {h}\" is impossible. \"Half stopped by\": the median over all runs (undetected = never).",
        "",
        f"| accuracy | design | A/A false stops 1-sided / 2-sided | power by {h}: 1-sided / 2-sided | fixed 1-sided "
        f"at {h} (theory) | outcomes for 50% (fixed) | half stopped by (1-sided) | median needed 1-sided / 2-sided | "
        f"1-sided by {pw['max_outcomes']} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in result["grid"]:
        o, t = g["one_sided"], g["two_sided"]
        lines.append(
            f"| {g['base_accuracy']:g} | {_design(g)} | {g['aa']['guardrail_one_sided_fpr']:.3f} / "
            f"{g['aa']['guardrail_two_sided_fpr']:.3f} | **{o['power_by_horizon']:.3f}** / {t['power_by_horizon']:.3f} | "
            f"{g['fixed_one_sided_once_power']:.3f} ({g['fixed_one_sided_theory_power']:.3f}) | "
            f"{_num(g['fixed_one_sided_outcomes_for_half_power'])} | {_num(o['median_outcomes_to_stop'])} | "
            f"{_num(o['median_outcomes_needed'])} / "
            f"{_num(t['median_outcomes_needed'])} | {o['power']:.3f} |")
    lines.append("")
    return "\n".join(lines)


def render_png(result: dict[str, Any], path: Path) -> None:
    """Left: A/A false-positive rates against alpha; right: power by the horizon per design (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    aa, alpha, pw = result["aa"], result["config"]["alpha"], result["power"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 2.2]})
    labels = ["fixed\npeeked", "mSPRT\n2-sided", "fixed\nonce", "guardrail\n1-sided", "guardrail\n2-sided CS"]
    values = [aa["fixed_horizon_peeked_fpr"], aa["sequential_fpr"], aa["fixed_horizon_once_fpr"],
              aa["guardrail_one_sided_fpr"], aa["guardrail_two_sided_fpr"]]
    left.bar(labels, values, color=["#c44e52", "#55a868", "#8c8c8c", "#4c72b0", "#8172b2"])
    left.axhline(alpha, color="black", linestyle="--", linewidth=1, label=f"alpha = {alpha}")
    left.set_ylabel("false-positive rate (A/A)")
    left.set_title(f"{aa['experiments']} A/A experiments, {aa['looks']} looks")
    left.tick_params(axis="x", labelsize=8)
    left.legend()
    grid = result["grid"]
    x = np.arange(len(grid))
    one = [g["one_sided"]["power_by_horizon"] for g in grid]
    two = [g["two_sided"]["power_by_horizon"] for g in grid]
    ref = [g["fixed_one_sided_theory_power"] for g in grid]
    right.bar(x - 0.2, one, 0.4, label="guardrail one-sided", color="#4c72b0")
    right.bar(x + 0.2, two, 0.4, label="two-sided CS", color="#8172b2")
    right.scatter(x, ref, marker="_", s=400, color="black", zorder=3, label="fixed one-sided, read once (upper ref.)")
    right.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    names = [f"{g['base_accuracy']:g}\n" + (f"{g['challenger_fraction']:.0%}" if g["mode"] == "split"
                                            else f"sh {g['correlation']:g}") for g in grid]
    right.set_xticks(x, names, fontsize=8)
    right.set_ylim(0, 1.05)
    right.set_ylabel(f"stopped by {pw['horizon']} outcomes")
    right.set_title(f"challenger {pw['effect']:g} worse: power by design (accuracy / split or shadow corr)")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
