"""An experiment's report as text: per arm metric with its interval, each comparison, join counters, winner."""

from __future__ import annotations

from typing import Any


def render_table(rep: dict[str, Any]) -> str:
    """The report of :func:`stream_ensemble.ab.control.report` as a fixed-width table (``ab report``, the demo)."""
    metric = rep["metric"]
    lines = [f"experiment {rep['experiment']} ({rep['mode']}, {rep['status']}), metric {metric}, alpha {rep['alpha']}"]
    lines.append(f"{'arm':<22}{'version':<20}{'n':>8}  {metric:>9}  {'interval':<19}{'log_loss':>9}{'brier':>8}{'ECE':>7}")
    for arm, a in rep["arms"].items():
        e = a["members"].get("ensemble")
        if e is None:
            lines.append(f"{arm:<22}{a['version']:<20}{0:>8}  (no outcome joined yet)")
            continue
        m = e[metric]

        def f(x: Any) -> str:
            return "   -   " if x is None else f"{x:.4f}"
        lines.append(f"{arm:<22}{a['version']:<20}{a['n']:>8}  {f(m['mean']):>9}  [{f(m['low'])}, {f(m['high'])}]  "
                     f"{f(e['log_loss']['mean']):>9}{f(e['brier']['mean']):>8}{f(e['calibration_error']):>7}")
    for arm, c in rep["comparisons"].items():
        def g(x: Any) -> str:
            return "-" if x is None else f"{x:+.4f}"
        lines.append(f"{arm} - champion ({'paired' if c['paired'] else 'independent'}, n={c['n']}): {g(c['difference'])} "
                     f"fixed [{g(c['low'])}, {g(c['high'])}] p={c['p_value']:.3g}; anytime CS [{g(c['cs_low'])}, "
                     f"{g(c['cs_high'])}] sequential p={c['sequential_p_value']:.3g}; worse (one-sided) sequential "
                     f"p={c['worse_sequential_p_value']:.3g}; guardrail ({c['guardrail_test']}) {c['guardrail']}")
    j = rep.get("join", {})
    lines.append("join: " + ", ".join(f"{k} {v}" for k, v in sorted(j.items())) if j else "join: (no counts yet)")
    lines.append(f"winner: {rep['winner']}")
    return "\n".join(lines)
