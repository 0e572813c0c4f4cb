"""``bench ab``'s report: goals, Markdown, PNG and the one-line JSON contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

CONTRACT = ("configured_fraction", "observed_fraction", "binomial_99", "switch_seen_s", "sticky_violations",
            "shadow_main_identical", "outcomes_published", "outcomes_joined", "arms", "p_value",
            "sequential_p_value", "winner", "guardrail_stopped")


def goals(r: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals, each true or false."""
    lo, hi = r["binomial_99"]
    seen = r["switch_seen_s"]
    seq = r["sequential_p_value"]
    return {
        "share_within_binomial_99": lo <= r["observed_fraction"] <= hi,
        "switch_seen_le_2s": seen is not None and seen <= 2.0,
        "sticky_violations_0": r["sticky_violations"] == 0,
        "shadow_main_identical": bool(r["shadow_main_identical"]),
        "joined_eq_published": r["outcomes_joined"] == r["outcomes_published"] > 0,
        "champion_better_anytime_p_lt_0.05": r["winner"] == "champion" and seq is not None and seq < 0.05,
        "guardrail_stopped": bool(r["guardrail_stopped"]),
        "lost_0": r["lost"] == 0,
    }


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def render_markdown(r: dict[str, Any]) -> str:
    g = goals(r)
    route, shadow, join = r["routing"], r["shadow"], r["join"]
    lines = [
        "# bench ab: a weaker challenger on the real broker, Redis and faust app", "",
        f"Champion {r['champion']}; challenger {r['challenger']} ({r['challenger_description']}). "
        f"{r['rate']:g} events/s over {r['entities']} entities, held-out rows; phases of {r['phase_s']:g} s; "
        f"guardrail armed at the faust restart (min {r['min_outcomes']} challenger outcomes); "
        f"load average {', '.join(f'{x:.2f}' for x in r['load_avg'])}.", "",
        "| figure | value | goal |", "|---|---|---|",
        f"| configured fraction | {r['configured_fraction']} | |",
        f"| observed fraction (entities of phase 1) | {_f(r['observed_fraction'])} ({route['phase1_entities']} entities; "
        f"events {_f(route['phase1_event_share'])}) | within {r['binomial_99']} |",
        f"| switch to {r['switch_to']:.0%} seen | {r['switch_seen_s']} s | <= 2 s |",
        f"| sticky violations (phase 1, phase 2) | {r['sticky_violations']} {route['sticky_violations_by_phase']} | 0 |",
        f"| arm differs from the recomputed hash | {route['assignment_mismatches']} | 0 |",
        f"| shadow: main topic identical to no experiment | {shadow['identical']} ({shadow['compared']} events, "
        f"{shadow['differing']} differ) | true |",
        f"| shadow scores / expected | {shadow['shadow_scores']} / {shadow['shadow_expected']} | equal |",
        f"| outcomes published (events scored in the experiment) / joined | {r['outcomes_published']} / "
        f"{r['outcomes_joined']} | equal |",
        f"| outcomes of events scored after the stop (no arm: the join counts them unknown) | "
        f"{r['outcomes_published_total'] - r['outcomes_published']} | |",
        f"| produced / scored / lost | {r['produced']} / {r['scored']} / {r['lost']} | lost 0 |",
        f"| fixed-horizon p (read once, at the end) | {_f(r['p_value'])} | |",
        f"| anytime-valid sequential p | {_f(r['sequential_p_value'])} | < 0.05 |",
        f"| winner | {r['winner']} | champion |",
        f"| guardrail stopped the challenger | {r['guardrail_stopped']} ({r['experiment_status']}, "
        f"{r['challenger_weights']}; challenger events after the stop: {route['challenger_after_stop']}) | true |",
        f"| outcomes joined at the last look before the stop | {r['guardrail_after_outcomes']} ({r['looks']} looks) | |",
        "", "| arm | version | n | accuracy | 95% interval | log loss |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for arm, a in r["arms"].items():
        lo, hi = a["accuracy_interval"]
        lines.append(f"| {arm} | {a['version']} | {a['n']} | {_f(a['accuracy'])} | [{_f(lo)}, {_f(hi)}] | {_f(a['log_loss'])} |")
    c = r["comparison"]
    lines += ["", f"Difference challenger − champion: {_f(c['difference'])}, fixed-horizon interval "
              f"[{_f(c['low'])}, {_f(c['high'])}], anytime-valid confidence sequence [{_f(c['cs_low'])}, {_f(c['cs_high'])}].",
              "", "Join counters: " + ", ".join(f"{k} {v}" for k, v in sorted(join.items())),
              "", "Timeline (s after the stream started): " + ", ".join(f"{k} {v}" for k, v in r["marks_s"].items()),
              "", "| goal | met |", "|---|---|"] + [f"| {k} | {'yes' if v else 'NO'} |" for k, v in g.items()]
    return "\n".join(lines) + "\n"


def render_png(r: dict[str, Any], path: Path) -> None:
    """Three panels: the challenger's share of scored events over time (configured weights as
    steps, restarts and the guardrail marked), each arm's accuracy and the difference's bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stream_ensemble.ab.plot import draw_history

    fig, (share, top, bottom) = plt.subplots(3, 1, figsize=(9, 10))
    tl, marks = r["timeline"], r["marks_s"]
    share.plot(tl["t"], [x if x is not None else float("nan") for x in tl["challenger_share"]], label="observed (1 s bins)")
    end = tl["t"][-1] if tl["t"] else 1.0
    stop = marks.get("guardrail", end)
    share.step([0, marks["switch"], stop, end], [r["configured_fraction"], r["switch_to"], 0.0, 0.0], where="post",
               color="black", linestyle="--", label="configured weight")
    for name in ("worker_killed", "faust_killed", "guardrail"):
        if name in marks:
            share.axvline(marks[name], color="grey", linewidth=0.8)
            share.text(marks[name], 0.95, f" {name.replace('_', ' ')}", fontsize=7, rotation=90, va="top",
                       transform=share.get_xaxis_transform())
    share.set_ylim(0, 1)
    share.set_xlabel("seconds after the stream started (worker clock)")
    share.set_ylabel("challenger share of events")
    share.set_title(f"bench ab: {r['challenger']} vs {r['champion']}")
    share.legend(fontsize=8, loc="upper right")
    rep = {"metric": r["metric"], "alpha": r["alpha"], "experiment": "experiment 1",
           "arms": {a: {"version": v["version"]} for a, v in r["arms"].items()},
           "comparisons": {r["challenger"]: r["comparison"]}}
    draw_history(top, bottom, r["history"], rep)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_line(r: dict[str, Any]) -> str:
    """The contract keys as one JSON line."""
    return orjson.dumps({k: r[k] for k in CONTRACT}).decode()
