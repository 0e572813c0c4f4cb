"""ops/redis.sh: health marks survive a restart (AOF) and memory is bounded, evicting only TTL keys.

A throwaway Redis started by the real script on its own port and directory, stopped and
started again; no other server is touched.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .conftest import free_port_block

pytestmark = pytest.mark.integration
OPS = Path(__file__).resolve().parents[2] / "ops"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[dict[str, str], redis.Redis]]:
    port = str(free_port_block(int(os.environ.get("REDIS_PERSIST_PORT", "7200")), 1))
    env = {**os.environ, "REDIS_PORT": port, "REDIS_DIR": str(tmp_path / "redis"), "REDIS_MAXMEMORY": "8mb"}
    env.pop("OPS_RECORD_FILE", None)
    subprocess.run(["bash", str(OPS / "redis.sh"), "start"], env=env, check=True, timeout=60)
    try:
        yield env, redis.Redis(host="127.0.0.1", port=int(port), socket_timeout=5)
    finally:
        subprocess.run(["bash", str(OPS / "redis.sh"), "stop"], env=env, check=False, timeout=60)


def test_health_marks_survive_a_restart(own_redis: tuple[dict[str, str], redis.Redis]) -> None:
    env, client = own_redis
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    client.hset("se:health", mapping={"knn": "down", "logreg@v1": "down"})
    client.set("se:deploy:default", "default@v2")
    subprocess.run(["bash", str(OPS / "redis.sh"), "stop"], env=env, check=True, timeout=60)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    subprocess.run(["bash", str(OPS / "redis.sh"), "start"], env=env, check=True, timeout=60)
    assert client.hgetall("se:health") == {b"knn": b"down", b"logreg@v1": b"down"}
    assert client.get("se:deploy:default") == b"default@v2"


def test_memory_is_bounded_and_only_cache_keys_are_evicted(own_redis: tuple[dict[str, str], redis.Redis]) -> None:
    _, client = own_redis
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    limit = int(client.config_get("maxmemory")["maxmemory"])
    assert limit == 8 * 1024 * 1024
    client.hset("se:health", "knn", "down")
    client.hset("se:ab:default", mapping={"experiment": "x", "status": "running"})
    body = b"x" * 1900  # about one scored body (README: ~1.9 KB per cache key)
    pipe = client.pipeline(transaction=False)
    n = 12_000  # ~23 MB of cache: three times the bound
    for i in range(n):
        pipe.set(f"se:cache:default@v1:sel:summary:{i:032x}", body, ex=3600)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    # maxmemory bounds used_memory minus what Redis does not count for eviction (the AOF
    # buffer of writes not yet flushed, replication buffers): on a slow disk the AOF buffer
    # alone held ~4 MB of this burst, so the raw used_memory is not the bounded figure.
    deadline = time.monotonic() + 5.0
    while True:
        info = client.info("memory")
        counted = info["used_memory"] - info.get("mem_not_counted_for_evict", 0)
        if counted <= limit * 1.1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    stats = client.info("stats")
    kept = client.dbsize()
    print(f"cache keys written {n}, kept {kept}, evicted {stats['evicted_keys']}, "
          f"used_memory {info['used_memory'] / 2**20:.1f} MB, counted for eviction "
          f"{counted / 2**20:.1f} MB of {limit / 2**20:.0f} MB")
    assert stats["evicted_keys"] > 0 and kept < n
    assert counted <= limit * 1.1
    assert kept * len(body) <= limit  # the data kept fits the bound whatever the buffers
    assert client.hget("se:health", "knn") == b"down"  # no TTL: never evicted
    assert client.hgetall("se:ab:default") == {b"experiment": b"x", b"status": b"running"}
