"""The bench faults harness on the real broker and Redis, in seconds: a supervised worker is
killed with SIGKILL under a steady stream with poison among the events, and the collector's
count by event_id adds up (the long scenarios run in ``stream-ensemble bench faults``)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from stream_ensemble.bench.faults.harness import BenchEnv
from stream_ensemble.bench.faults.poison import poison_events
from stream_ensemble.bench.faults.run import Reference, Run, kill_worker

pytestmark = pytest.mark.integration


def test_kill9_under_poison_counts_every_event(servers: dict[str, str], registry: Path,
                                               feature_rows: list[dict[str, Any]], tmp_path: Path) -> None:
    env = BenchEnv(bootstrap=servers["bootstrap"], redis_url=servers["redis"], registry=registry,
                   records=feature_rows, work_dir=tmp_path, rate=100.0)
    with Run(env, "it") as run:
        # no oversize event here: the harness is under test, not today's DLQ size limit
        poison = [p for p in poison_events(run.prefix, feature_rows[0], copies=1, hypothesis_n=4)
                  if p[1] in ("random_bytes", "empty_value", "hypothesis", "unknown_only")]
        run.produce(600, poison=poison, poison_every=80)
        run.wait_for_outputs(100)  # the kill must land on a worker that is scoring
        kill_worker(run, 0, signal.SIGKILL)
        res = run.result(run.drain(quiet_s=40), Reference(registry, feature_rows))
    assert res["produced"] == 600 + len(poison)
    assert res["scored"] + res["dead_lettered"] + res["lost"] >= res["produced"]
    assert res["lost"] == 0  # at-least-once through kill -9
    assert res["worker_restarts"] == 1 and res["bench_stops"] >= 1 and res["worker_exits"] == []
    kinds = res["poison"]
    assert kinds["random_bytes"]["dead_lettered"] == 1  # found by its key: the value has no event_id
    assert kinds["empty_value"]["dead_lettered"] == 1
    assert sum(v["sent"] for v in kinds.values()) == len(poison)
    assert res["degraded_actual"] == res["poison_neighbours_degraded"] == 0  # healthy members, same scores
    assert 0 < res["max_stall_s"] < 120 and res["stall_at_marks_s"][0] > 0
    assert res["rss_mb_max"] > 50 and res["redis_mb_max"] > 0
