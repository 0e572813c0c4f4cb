"""The ``bench faults`` result: the issue's goals checked per scenario, the Markdown table,
the PNG (outputs/s of every scenario over time, fault actions marked) and the summary line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The per-scenario contract keys, in the issue's order.
CONTRACT = ("name", "produced", "scored", "dead_lettered", "lost", "duplicates", "degraded", "max_stall_s",
            "worker_restarts", "rss_mb_max", "redis_mb_max")
#: Scenarios whose ``max_stall_s`` has a goal, and the bound.
STALL_GOALS = {"broker_down_20s": 5.0, "kill9_x3": 15.0}


def goals(s: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's goals for one scenario (None: not applicable to it)."""
    g: dict[str, bool | None] = {
        "lost_0": s["lost"] == 0,
        "no_worker_exit": not s["worker_exits"],
        "degraded_flagged": None if s.get("degraded_unflagged") is None else s["degraded_unflagged"] == 0,
        "stall": None if s["name"] not in STALL_GOALS else s["max_stall_s"] <= STALL_GOALS[s["name"]],
        "poison_neighbours_0": None if "poison_neighbours_degraded" not in s
        else s["poison_neighbours_degraded"] == 0 and s["good_dead_lettered"] == 0,
        "redis_bounded": s.get("redis_bounded_by_config"),
        "health_mark_kept": None if "health_mark_kept" not in s
        else bool(s["health_mark_kept"]) and s["marked_used_after_restart"] == 0,
    }
    return g


def summarize(scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and which goals fail, for the summary line."""
    failing = {s["name"]: [k for k, v in goals(s).items() if v is False] for s in scenarios}
    return {
        "scenarios": len(scenarios), "lost": sum(s["lost"] for s in scenarios),
        "worker_exits": sum(len(s["worker_exits"]) for s in scenarios),
        "degraded_unflagged": sum(s.get("degraded_unflagged") or 0 for s in scenarios),
        "goals_failed": {k: v for k, v in failing.items() if v},
        "goals_met": all(not v for v in failing.values()),
    }


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "**NO**"
    if v is None:
        return "–"
    if isinstance(v, list):
        return ",".join(str(x) for x in v) or "none"
    return str(v)


def render_markdown(result: dict[str, Any]) -> str:
    """Contract table, goals table, poison breakdown and notes."""
    sc = result["scenarios"]
    lines = ["# bench faults: the worker under faults, on the real broker and Redis", "",
             f"Steady producer at {result['config']['rate']} events/s (soak {result['config']['soak_rate']}/s), "
             f"{result['config']['partitions']} partitions; load average before "
             f"{result['machine']['load_before']}, after {result['machine']['load_after']}; "
             f"{result['elapsed_s']} s in all.", "",
             "| " + " | ".join(CONTRACT) + " | worker exits | degraded actual / unflagged |",
             "|" + "---|" * (len(CONTRACT) + 2)]
    for s in sc:
        lines.append("| " + " | ".join(_cell(s.get(k)) for k in CONTRACT) + f" | {_cell(s['worker_exits'])} | "
                     f"{_cell(s.get('degraded_actual'))} / {_cell(s.get('degraded_unflagged'))} |")
    names = list(goals(sc[0])) if sc else []
    lines += ["", "Goals (– = not applicable):", "", "| scenario | " + " | ".join(names) + " |",
              "|" + "---|" * (len(names) + 1)]
    lines += ["| " + s["name"] + " | " + " | ".join(_cell(goals(s)[k]) for k in names) + " |" for s in sc]
    for s in sc:
        if "poison" in s:
            lines += ["", f"Poison mix: {s['poison_neighbours_degraded']} good neighbours degraded, "
                      f"{s['good_dead_lettered']} good events dead-lettered.", "",
                      "| kind | sent | scored | dead-lettered | lost | error types |", "|---|---|---|---|---|---|"]
            lines += [f"| {k} | {v['sent']} | {v['scored']} | {v['dead_lettered']} | {v['lost']} | "
                      f"{', '.join(f'{e}: {n}' for e, n in v['error_types'].items()) or '–'} |"
                      for k, v in s["poison"].items()]
    lines += ["", "Per scenario: fault actions (seconds after the start) and the stall around each.", ""]
    for s in sc:
        acts = "; ".join(f"+{t}s {label} (stall {st} s)" for (t, label), st in zip(s["marks"], s["stall_at_marks_s"]))
        extra = {k: s[k] for k in ("outage_s", "faulty_member", "events_using_faulty", "marked_member",
                                   "health_mark_kept", "marked_used_before_restart", "marked_used_after_restart",
                                   "redis_maxmemory_mb", "redis_bounded_by_config", "aborted", "latency_max_s",
                                   "max_gap_raw_s", "good_dead_lettered") if k in s}
        lines.append(f"- `{s['name']}`: {acts or 'no actions'}; {json.dumps(extra)}")
    return "\n".join(lines) + "\n"


def render_png(result: dict[str, Any], path: Path) -> None:
    """One panel per scenario: outputs/s over time, fault actions as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = result["scenarios"]
    fig, axes = plt.subplots(max(len(sc), 1), 1, figsize=(9, 1.6 * max(len(sc), 1) + 0.6), squeeze=False)
    for ax, s in zip(axes[:, 0], sc):
        ax.plot(range(len(s["timeline"])), s["timeline"], linewidth=0.8)
        for a, b in s["blackouts_s"]:
            ax.axvspan(a, b, color="grey", alpha=0.25)
        for t, _ in s["marks"]:
            ax.axvline(t, color="red", linestyle="--", linewidth=0.7)
        ax.set_ylabel("out/s", fontsize=7)
        ax.set_title(f"{s['name']}: lost {s['lost']}, stall {s['max_stall_s']} s", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("seconds after the start (red: fault actions, grey: broker down)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_line(result: dict[str, Any]) -> str:
    """The one JSON line the CLI prints last."""
    return json.dumps({**result["summary"], "per_scenario": [{k: s[k] for k in CONTRACT} for s in result["scenarios"]]})
