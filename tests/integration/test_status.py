"""`status --json` lists every live worker of a group from its heartbeat; `health set` refuses typos."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration


def _cli(servers: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream_ensemble", *args, "--redis-url", servers["redis"]],
                          capture_output=True, text=True, timeout=60)


def test_status_lists_two_live_workers_of_one_group(servers, topics: Topics, start_worker, feature_rows, registry: Path) -> None:
    a, b = start_worker(), start_worker()
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i], prefix="s") for i in range(60)])
    collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= 60)
    deadline = time.monotonic() + 40
    workers: list[dict] = []
    while time.monotonic() < deadline:
        proc = _cli(servers, "status", "--json", "--group", topics.group)
        assert proc.returncode == 0, proc.stderr
        workers = orjson.loads(proc.stdout)["workers"]
        # both joined and each owns part of the 3 partitions
        if len(workers) == 2 and all(w["assigned"] and w["selection_id"] for w in workers) \
                and sum(w["consumed"] for w in workers) >= 60:
            break
        time.sleep(1)
    assert len(workers) == 2, workers
    assert {w["pid"] for w in workers} == {a.proc.pid, b.proc.pid}
    for w in workers:
        assert w["group"] == topics.group and w["ensemble"].startswith("default@v") and w["members"]
        assert w["features_topic"] == topics.features and w["selection_id"] and w["ready"] is True
    assert sorted(p for w in workers for p in w["assigned"]) == [f"{topics.features}[{i}]" for i in range(3)]
    text = _cli(servers, "status", "--group", topics.group)
    assert text.returncode == 0 and str(a.proc.pid) in text.stdout and str(b.proc.pid) in text.stdout
    assert a.terminate() == 0
    # a clean stop removes the heartbeat at once
    workers = orjson.loads(_cli(servers, "status", "--json", "--group", topics.group).stdout)["workers"]
    assert [w["pid"] for w in workers] == [b.proc.pid]
    assert b.terminate() == 0


def test_health_set_refuses_unknown_members_unless_forced(servers, registry: Path, rclient) -> None:
    reg = ["--registry", str(registry)]
    bad = _cli(servers, "health", "set", "knnn", "down", *reg)
    assert bad.returncode == 2 and "no registered ensemble" in bad.stderr and "knn" in bad.stderr
    assert _cli(servers, "health", "set", "logreg@v99", "down", *reg).returncode == 2
    assert rclient.hgetall("se:health") == {}
    ok = _cli(servers, "health", "set", "knn", "down", *reg)
    assert ok.returncode == 0, ok.stderr
    forced = _cli(servers, "health", "set", "future_model", "down", *reg, "--force")
    assert forced.returncode == 0
    assert rclient.hgetall("se:health") == {b"knn": b"down", b"future_model": b"down"}
