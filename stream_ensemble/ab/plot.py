"""The report's PNG: each arm's metric over time (looks) with its interval, and the difference's bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], report: dict[str, Any], path: Path) -> None:
    """Two panels: per arm mean and interval against outcomes joined; challenger − champion with
    the fixed-horizon interval and the anytime-valid confidence sequence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=False)
    draw_history(top, bottom, history, report)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_history(top: Any, bottom: Any, history: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """The two panels of :func:`plot_history` on given matplotlib axes (``bench ab`` adds its own)."""
    metric = report["metric"]
    for arm in report["arms"]:
        pts = [(h["arms"][arm]["n"], h["arms"][arm].get("mean"), h["arms"][arm].get("low"), h["arms"][arm].get("high"))
               for h in history if arm in h["arms"] and h["arms"][arm].get("mean") is not None]
        if not pts:
            continue
        n, m, lo, hi = zip(*pts)
        line = top.plot(n, m, label=f"{arm} ({report['arms'][arm]['version']})")[0]
        top.fill_between(n, [x if x is not None else y for x, y in zip(lo, m)],
                         [x if x is not None else y for x, y in zip(hi, m)], alpha=0.2, color=line.get_color())
    top.set_xlabel("outcomes joined in the arm")
    top.set_ylabel(metric)
    top.set_title(f"{report['experiment']}: {metric} per arm ({1 - report['alpha']:.0%} intervals)")
    top.legend(loc="best", fontsize=8)
    for arm in report["comparisons"]:
        looks = [h for h in history if h.get("comparisons", {}).get(arm, {}).get("difference") is not None]
        if not looks:
            continue
        xs = [h["arms"][arm]["n"] for h in looks]
        cs = [h["comparisons"][arm] for h in looks]
        line = bottom.plot(xs, [c["difference"] for c in cs], label=f"{arm} − champion")[0]
        big = 1.0
        bottom.fill_between(xs, [c["low"] if c["low"] is not None else -big for c in cs],
                            [c["high"] if c["high"] is not None else big for c in cs], alpha=0.25,
                            color=line.get_color(), label="fixed-horizon interval")
        bottom.plot(xs, [c["cs_low"] if c["cs_low"] is not None else float("nan") for c in cs], "--", color=line.get_color(),
                    label="anytime-valid confidence sequence")
        bottom.plot(xs, [c["cs_high"] if c["cs_high"] is not None else float("nan") for c in cs], "--", color=line.get_color())
    bottom.axhline(0.0, color="black", lw=0.8)
    bottom.set_xlabel("challenger outcomes joined")
    bottom.set_ylabel(f"difference in {metric}")
    bottom.legend(loc="best", fontsize=8)
