"""A worker on a Sentinel-managed Redis (ops/redis-sentinel.sh) keeps scoring through a failover."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from .conftest import Topics, collect, event, free_port_block, produce

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SCRIPT = ["bash", str(REPO / "ops" / "redis-sentinel.sh")]


@pytest.fixture(scope="module")
def sentinel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    port = str(free_port_block(int(os.environ.get("REDIS_SENTINEL_PORT", "7100")), 3))
    env = {**os.environ, "REDIS_SENTINEL_PORT": port, "REDIS_SENTINEL_DIR": str(tmp_path_factory.mktemp("sentinel"))}
    started = subprocess.run([*SCRIPT, "start"], env=env, capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        msg = f"cannot start Redis with a Sentinel on {port}: {started.stderr.strip()}"
        pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
    yield env
    subprocess.run([*SCRIPT, "stop"], env=env, capture_output=True, timeout=60)


def _primary(env: dict[str, str]) -> redis.Redis:
    out = subprocess.run([*SCRIPT, "primary"], env=env, capture_output=True, text=True, timeout=30, check=True)
    host, port = out.stdout.strip().rsplit(":", 1)
    return redis.Redis(host=host, port=int(port))


def test_worker_follows_a_sentinel_failover(sentinel_env, servers, topics: Topics, start_worker, feature_rows) -> None:
    url = f"redis+sentinel://127.0.0.1:{int(sentinel_env['REDIS_SENTINEL_PORT']) + 2}/mymaster/0"
    before = _primary(sentinel_env)
    before.delete("se:health")
    worker = start_worker("--redis-url", url, "--batch-size", "40")
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i % 20], prefix="s") for i in range(60)])
    first = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 60)
    assert len({d["event_id"] for d in first}) == 60
    assert len(list(before.scan_iter(match="se:cache:*", count=1000))) >= 20  # the cache lives on the primary

    failover = subprocess.run([*SCRIPT, "failover"], env=sentinel_env, capture_output=True, text=True, timeout=60)
    assert failover.returncode == 0, failover.stderr
    after = _primary(sentinel_env)
    assert after.connection_pool.connection_kwargs["port"] != before.connection_pool.connection_kwargs["port"]

    # Health marks written to the new primary reach the worker: it found the new primary itself.
    after.hset("se:health", "knn", "down")
    deadline = time.monotonic() + 30
    seen: list[dict] = []
    n = 0
    while time.monotonic() < deadline:
        produce(servers["bootstrap"], topics.features, [event(1000 + n, feature_rows[30 + n % 50], prefix="s2")])
        n += 1
        docs = collect(servers["bootstrap"], topics.scores, lambda d: any(x["event_id"].startswith("s2-") for x in d),
                       timeout=5)
        seen = [d for d in docs if d["event_id"].startswith("s2-")]
        if seen and not any(m.startswith("knn") for m in seen[-1]["models_used"]):
            break
        time.sleep(1.0)
    assert seen, "no event scored after the failover"
    assert not any(m.startswith("knn") for m in seen[-1]["models_used"]), "worker still reads the old primary"
    assert worker.proc.poll() is None, "the worker exited during the failover"

    status = subprocess.run([sys.executable, "-m", "stream_ensemble", "status", "--json", "--redis-url", url,
                             "--group", topics.group], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert [w["pid"] for w in orjson.loads(status.stdout)["workers"]] == [worker.proc.pid]
    assert worker.terminate() == 0
    after.delete("se:health")
