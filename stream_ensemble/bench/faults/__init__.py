"""``bench faults``: the worker under faults, on the real broker and Redis.

Each scenario (:mod:`~stream_ensemble.bench.faults.scenarios`) starts supervised ``serve``
processes on fresh topics, a steady producer process and an independent collector that counts
by event_id (:mod:`~stream_ensemble.bench.faults.harness`, :mod:`~stream_ensemble.bench.faults.run`),
applies its fault, and reports ``produced``, ``scored``, ``dead_lettered``, ``lost``,
``duplicates``, ``degraded``, ``max_stall_s``, ``worker_restarts``, ``rss_mb_max`` and
``redis_mb_max``. Outage scenarios stop servers, so they use the bench's own broker and Redis
(:mod:`~stream_ensemble.bench.faults.servers`, through ``ops/``), never the operator's.
May import: ``stream_ensemble`` (any layer), confluent-kafka, redis, hypothesis, matplotlib.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from stream_ensemble.bench.faults.report import summarize
from stream_ensemble.bench.faults.scenarios import SCENARIOS, Context


def run(ctx: Context, names: Sequence[str]) -> dict[str, Any]:
    """Run the scenarios ``names`` in order; a scenario that raises is reported, not fatal.

    Returns
    -------
    dict
        ``scenarios`` (one figure dict each), ``errors``, ``summary``, ``config``, ``machine``.
    """
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    try:
        for name in names:
            ctx.env.log(f"scenario {name} ...")
            t = time.perf_counter()
            try:
                res = SCENARIOS[name](ctx)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}"[:500]
                ctx.env.log(f"   {name} failed: {errors[name]}")
                continue
            results.append(res)
            ctx.env.log(f"   {name}: produced {res['produced']}, lost {res['lost']}, duplicates {res['duplicates']}, "
                        f"dlq {res['dead_lettered']}, stall {res['max_stall_s']} s, exits {res['worker_exits']}, "
                        f"degraded {res['degraded']} ({time.perf_counter() - t:.0f} s)")
    finally:
        ctx.servers.close()
    summary = summarize(results)
    if errors:
        summary["goals_met"] = False
    return {"scenarios": results, "errors": errors, "summary": {**summary, "errors": sorted(errors)},
            "config": {"rate": ctx.env.rate, "soak_rate": ctx.soak_rate, "soak_events": ctx.soak_events,
                       "partitions": ctx.env.partitions, "time_scale": ctx.env.time_scale, "names": list(names)},
            "machine": {"cpus": os.cpu_count(), "load_before": load_before,
                        "load_after": [round(x, 2) for x in os.getloadavg()]},
            "elapsed_s": round(time.perf_counter() - t0, 1)}
