"""Addresses carry through: `make demo` with only KAFKA_PORT / REDIS_PORT set talks to those ports.

The test gives make a Redis port nobody uses, so `make demo` (through ops/up.sh) must start a
fresh Redis there, and the demo and its worker must use it: the demo's cache keys appear in
that Redis and nowhere else. Kafka is the suite's broker, reached only through KAFKA_PORT.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import orjson
import pytest
import redis

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_demo_follows_kafka_port_and_redis_port(servers: dict[str, str], registry: Path, tmp_path: Path) -> None:
    host, _, kafka_port = servers["bootstrap"].rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        pytest.skip("the suite's broker is not local; make demo derives 127.0.0.1 addresses")
    redis_port = _free_port()
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_")}  # nothing but the ports
    env.update({
        "KAFKA_PORT": kafka_port, "REDIS_PORT": str(redis_port), "REDIS_DIR": str(tmp_path / "redis"),
        "UP_RECORD": str(tmp_path / "started-by-test"), "SE_REGISTRY": str(registry),
        "SE_FEATURES_TOPIC": f"pt-{tag}-features", "SE_SCORES_TOPIC": f"pt-{tag}-scores",
        "SE_DLQ_TOPIC": f"pt-{tag}-dlq", "SE_GROUP_ID": f"pt-{tag}", "SE_DEMO_EVENTS": "120", "SE_DEMO_MALFORMED": "6",
    })
    env.pop("KAFKA_CONTROLLER_PORT", None)
    try:
        proc = subprocess.run(["make", "-s", "-C", str(REPO), "demo"], env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"redis 127.0.0.1:{redis_port} (started)" in proc.stdout
        summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["lost"] == 0 and summary["scored"] == 120 and summary["dead_lettered"] == 6
        # the demo's experiment: every scored event's outcome joined to its arm; 120 outcomes are
        # under the 200 a look needs, so the winner must still be undecided
        assert set(summary["arms"]) == {"champion", "demo-challenger@v1"}
        assert sum(summary["arms"].values()) == 120 and summary["arms"]["demo-challenger@v1"] > 0
        assert summary["winner"] == "undecided"
        assert "== the experiment (120 outcomes published, 120 joined)" in proc.stdout
        fresh = redis.Redis(port=redis_port)
        assert list(fresh.scan_iter(match="se:cache:*", count=1000)), "the demo's worker did not cache in the Redis on REDIS_PORT"
    finally:
        subprocess.run(["bash", str(REPO / "ops" / "down.sh")], env=env, capture_output=True, timeout=60)
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()
