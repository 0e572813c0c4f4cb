"""A worker on a 3-node Redis Cluster (ops/redis-cluster.sh): cache, health and heartbeats work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from redis.cluster import RedisCluster

from .conftest import Topics, collect, event, free_port_block, produce

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = str(free_port_block(int(os.environ.get("REDIS_CLUSTER_PORT", "7000")), 3))
    env = {**os.environ, "REDIS_CLUSTER_PORT": port, "REDIS_CLUSTER_DIR": str(tmp_path_factory.mktemp("cluster"))}
    script = ["bash", str(REPO / "ops" / "redis-cluster.sh")]
    already = subprocess.run([*script, "status"], env=env, capture_output=True).returncode == 0
    if not already:
        started = subprocess.run([*script, "start"], env=env, capture_output=True, text=True, timeout=60)
        if started.returncode != 0:
            msg = f"cannot start a Redis Cluster on {port}: {started.stderr.strip()}"
            pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
    yield f"redis+cluster://127.0.0.1:{port}/0"
    if not already:
        subprocess.run([*script, "stop"], env=env, capture_output=True, timeout=60)


def test_worker_on_a_redis_cluster(cluster_url: str, servers, topics: Topics, start_worker, feature_rows) -> None:
    port = int(cluster_url.rsplit(":", 1)[1].split("/")[0])
    rc = RedisCluster(host="127.0.0.1", port=port)
    rc.delete("se:health")
    worker = start_worker("--redis-url", cluster_url, "--batch-size", "40")
    rows = [feature_rows[i % 20] for i in range(120)]  # 20 distinct rows: later repeats hit the cache
    produce(servers["bootstrap"], topics.features, [event(i, r, prefix="c") for i, r in enumerate(rows[:60])])
    first = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 60)
    produce(servers["bootstrap"], topics.features, [event(i, r, prefix="c2") for i, r in enumerate(rows[60:])])
    docs = collect(servers["bootstrap"], topics.scores, lambda d: sum(x["event_id"].startswith("c2-") for x in d) >= 60)
    second = [d for d in docs if d["event_id"].startswith("c2-")]
    assert len(first) >= 60 and all(d["cache_hit"] for d in second)
    cache_keys = list(rc.scan_iter(match="se:cache:*", count=1000))
    assert len(cache_keys) >= 20
    assert len({rc.keyslot(k) for k in cache_keys}) > 1  # spread over the slots, not piled on one node
    # health marks and heartbeats go through the cluster too
    status = subprocess.run([sys.executable, "-m", "stream_ensemble", "status", "--json", "--redis-url", cluster_url,
                             "--group", topics.group], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert [w["pid"] for w in orjson.loads(status.stdout)["workers"]] == [worker.proc.pid]
    rc.hset("se:health", "knn", "down")
    time.sleep(2.2)
    produce(servers["bootstrap"], topics.features, [event(999, feature_rows[77], prefix="c3")])
    last = collect(servers["bootstrap"], topics.scores, lambda d: any(x["event_id"] == "c3-999" for x in d))
    doc = next(d for d in last if d["event_id"] == "c3-999")
    assert not any(m.startswith("knn") for m in doc["models_used"])
    assert worker.terminate() == 0
    rc.delete("se:health")
