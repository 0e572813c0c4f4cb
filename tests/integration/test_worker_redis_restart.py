"""A live worker across a Redis restart (ops/redis.sh, AOF): the health mark an operator set
before the restart is still there and still honoured after it, the worker scores through the
outage, resumes by itself (no exit) and logs the outage once when it starts and once when it ends.

A throwaway Redis on its own port and directory; the broker is the suite's.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from .conftest import Topics, collect, event, free_port_block, produce

pytestmark = pytest.mark.integration
OPS = Path(__file__).resolve().parents[2] / "ops"


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    port = str(free_port_block(int(os.environ.get("REDIS_RESTART_PORT", "7210")), 1))
    env = {**os.environ, "REDIS_PORT": port, "REDIS_DIR": str(tmp_path / "redis")}
    env.pop("OPS_RECORD_FILE", None)
    subprocess.run(["bash", str(OPS / "redis.sh"), "start"], env=env, check=True, timeout=60)
    try:
        yield env, f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run(["bash", str(OPS / "redis.sh"), "stop"], env=env, check=False, timeout=60)


def _redis(env: dict[str, str], action: str) -> None:
    subprocess.run(["bash", str(OPS / "redis.sh"), action], env=env, check=True, timeout=60)


def test_worker_keeps_health_marks_and_resumes_across_a_redis_restart(
        servers: dict[str, str], topics: Topics, start_worker: Any, feature_rows: list[dict[str, Any]],
        restartable_redis: tuple[dict[str, str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    env, url = restartable_redis
    client = redis.Redis.from_url(url, socket_timeout=5)
    monkeypatch.setenv("SE_HEALTH_REFRESH_S", "0.5")  # the worker inherits the environment
    worker = start_worker("--redis-url", url)
    n = 30

    def batch(k: int) -> list[dict[str, Any]]:
        produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i % len(feature_rows)], prefix=f"b{k}")
                                                        for i in range(n)])
        docs = collect(servers["bootstrap"], topics.scores,
                       lambda d: len({x["event_id"] for x in d if x["event_id"].startswith(f"b{k}-")}) >= n, timeout=90)
        assert worker.proc.poll() is None, f"the worker exited: {worker.log.read_text()[-2000:]}"
        return [d for d in docs if d["event_id"].startswith(f"b{k}-")]

    before = batch(0)
    member = max({m for d in before for m in d["models_used"]},
                 key=lambda m: sum(m in d["models_used"] for d in before))
    client.hset("se:health", member, "down")
    time.sleep(2.0)  # > SE_HEALTH_REFRESH_S
    marked = batch(1)
    assert all(member not in d["models_used"] for d in marked), "the mark is honoured"

    _redis(env, "stop")
    with pytest.raises(redis.ConnectionError):
        client.ping()
    during = batch(2)  # scored through the outage, with the last known health
    assert len({d["event_id"] for d in during}) == n and all(member not in d["models_used"] for d in during)
    _redis(env, "start")
    assert client.hget("se:health", member) == b"down", "AOF: the mark survived the restart"
    time.sleep(2.0)
    after = batch(3)
    assert all(member not in d["models_used"] for d in after), "still honoured after the restart"
    assert all(d["degraded_reason"] != "health_unknown" for d in after)

    assert worker.proc.poll() is None and worker.terminate() == 0
    log = worker.log.read_text()
    states = [line.split('"state":"')[1].split('"')[0] for line in log.splitlines() if '"event":"redis"' in line]
    assert states == ["down", "up"], f"one line when the outage starts, one when it ends: {states}"
    # the deploy watcher and the experiment router read Redis every second: one line per state change, not per read
    assert log.count("deploy target read failed") == 0
    assert log.count("cannot read the experiment") <= 1
