"""Markdown table and PNG chart of a ``bench throughput`` result (the HTML report embeds both)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOALS = ("stream-ensemble defaults >= 0.5x pass-through, >= 100x naive; sustained p95 < 100 ms, p99 < 250 ms, "
         "0 lost; 2 processes >= 1.7x one; 120-member pool >= 0.5x the default pool")


def _label(run: dict[str, Any]) -> str:
    pool = "" if run["pool"] == "default" else f", {run['pool']} pool"
    return f"{run['worker']} x{run['processes']}{pool}"


def render_markdown(result: dict[str, Any]) -> str:
    """Tables of the runs, the sustained run, the ratios and the machine."""
    m, c = result["machine"], result["config"]
    lines = [
        "# Throughput through the real broker and Redis", "",
        f"{c['rounds']} interleaved round(s); {c['events']} distinct events per run "
        f"({c['naive_events']} for naive, {c['large_events']} for the large pool), built from {c['rows']} real rows; "
        f"{c['partitions']} partitions. Per configuration the median round; every round's events/s in the last column.",
        "",
        "| worker | events | events/s | CPU µs/event | p50 ms | p95 ms | p99 ms | lost | duplicates | out bytes | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(f"| {_label(r)} | {r['events']} | {r['events_per_s']:,.0f} | {r['cpu_us_per_event']:.0f} | "
                     f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['lost']} | {r['duplicates']} | "
                     f"{r['out_bytes_mean']:.0f} | {', '.join(f'{x:,.0f}' for x in r['rounds_events_per_s'])} |")
    s = result["sustained"]
    lines += [
        "", "Latency of the maximum-rate runs includes the wait of a published backlog; the sustained run measures "
        "latency: a separate producer process offers events at a fixed rate, latency = the scored event's broker "
        "append time - the time the producer handed the event over.", "",
        "| sustained | offered/s | scored/s | p50 ms | p95 ms | p99 ms | lost | duplicates |",
        "|---|---|---|---|---|---|---|---|",
        f"| stream-ensemble x1 | {s['offered_per_s']:,.0f} | {s['events_per_s']:,.0f} | {s['p50_ms']:.0f} | "
        f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['lost']} | {s['duplicates']} |",
        "", "| ratio | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in result["ratios"].items()],
        "", f"Goals: {GOALS}.", "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, load average before "
        f"{m['load_before']}, after {m['load_after']}; {result['elapsed_s']:.0f} s.", "",
    ]
    return "\n".join(lines)


def render_png(result: dict[str, Any], path: Path) -> None:
    """Horizontal bars of events/s per configuration (log scale: naive is ~100x below)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    labels = [_label(r) for r in runs]
    values = [max(r["events_per_s"], 1e-3) for r in runs]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(runs) + 1.5))
    colors = ["#888888" if r["worker"] != "stream-ensemble" else "#1f77b4" for r in runs]
    ax.barh(labels, values, color=colors)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("events/s through the broker (log scale)")
    ax.set_title(f"bench throughput (load {result['machine']['load_after'][0]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_line(result: dict[str, Any]) -> str:
    """The one-line JSON summary the CLI prints last."""
    rate = {(r["worker"], r["processes"], r["pool"]): r["events_per_s"] for r in result["runs"]}
    return json.dumps({
        "stream_ensemble_per_s": rate.get(("stream-ensemble", 1, "default")),
        "passthrough_per_s": rate.get(("passthrough", 1, "default")), "naive_per_s": rate.get(("naive", 1, "default")),
        **result["ratios"], "sustained": result["sustained"],
        "lost": sum(r["lost"] for r in result["runs"]) + result["sustained"]["lost"],
        "load": result["machine"]["load_after"],
    })
