"""The servers ``bench faults`` may stop: its own broker, Redis and 3-node cluster, started
through the repository's ``ops/`` scripts (the same ones ``make up`` and CI use).

An outage scenario stops and restarts a server, so it never uses the operator's: each one
here has its own ports and data directory under the bench's work directory, and ``close``
stops only what this object started.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from stream_ensemble.errors import ConfigError

OPS = Path(__file__).resolve().parents[3] / "ops"
#: Start attempts after the first when the port is held, and how the scripts' output says so.
BIND_RETRIES = 3
BIND_FAILURES = ("Address already in use", "failed to bind", "bind:")


@dataclass
class OwnServers:
    """A single broker and a Redis of the bench's own (started lazily), plus the 3-node cluster.

    Parameters
    ----------
    work_dir : Path
        Data directories go under it (``kafka/``, ``redis/``, ``kafka-cluster/``).
    kafka_port, redis_port, cluster_port : int
        Client ports; the broker also takes ``kafka_port + 1..3`` (controller, SASL, TLS) and the
        cluster ``cluster_port + 0..23``.
    """

    work_dir: Path
    kafka_port: int
    redis_port: int
    cluster_port: int
    started: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not (OPS / "kafka.sh").is_file():
            raise ConfigError(f"bench faults needs the repository's ops/ scripts (not found in {OPS})")

    @property
    def bootstrap(self) -> str:
        """The single broker's address."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """The own Redis (database 0)."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def cluster_bootstrap(self) -> str:
        """The three cluster nodes' client listeners."""
        return ",".join(f"127.0.0.1:{self.cluster_port + 10 * k}" for k in range(3))

    def _start(self, script: str, *args: str) -> None:
        """Run a start command, again (up to ``BIND_RETRIES`` times) when its port is held.

        While a server is down its clients keep connecting to its port, each from a random
        ephemeral port; when the server's port lies in the ephemeral range (Linux: 32768-60999)
        one of those connects can take the port itself (a TCP self-connect) and hold it for a
        moment, so the restart fails to bind ("Address already in use", seen once in
        broker_down_90s on port 40292). Ports below 32768 avoid it; the retry covers the rest.
        """
        for attempt in range(BIND_RETRIES + 1):
            try:
                self._run(script, *args)
                return
            except ConfigError as exc:
                if attempt == BIND_RETRIES or not any(m in str(exc) for m in BIND_FAILURES):
                    raise
                time.sleep(2.0)

    def _run(self, script: str, *args: str, timeout: float = 300.0) -> str:
        env = {**os.environ, "KAFKA_PORT": str(self.kafka_port), "KAFKA_CONTROLLER_PORT": str(self.kafka_port + 1),
               "KAFKA_SASL_PORT": str(self.kafka_port + 2), "KAFKA_TLS_PORT": str(self.kafka_port + 3),
               "KAFKA_DATA_DIR": str(self.work_dir / "kafka"), "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
               "REDIS_PORT": str(self.redis_port), "REDIS_DIR": str(self.work_dir / "redis"),
               "KAFKA_CLUSTER_PORT": str(self.cluster_port), "KAFKA_CLUSTER_DIR": str(self.work_dir / "kafka-cluster"),
               "OPS_RECORD_FILE": ""}
        proc = subprocess.run(["bash", str(OPS / script), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ConfigError(f"ops/{script} {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
        return proc.stdout

    # ------------------------------------------------------------------ broker
    def kafka_start(self) -> float:
        """Start (or find) the own broker; returns when it serves, with the seconds it took."""
        t0 = time.monotonic()
        self._start("kafka.sh", "start")
        self.started.add("kafka")
        return time.monotonic() - t0

    def kafka_stop(self) -> None:
        """Stop the own broker (SIGTERM, then SIGKILL after the grace)."""
        self._run("kafka.sh", "stop")

    # ------------------------------------------------------------------- redis
    def redis_start(self) -> float:
        """Start (or find) the own Redis with the ``ops/redis.sh`` settings."""
        t0 = time.monotonic()
        self._start("redis.sh", "start")
        self.started.add("redis")
        return time.monotonic() - t0

    def redis_stop(self) -> None:
        """Stop the own Redis (SIGTERM: it saves first when persistence is configured)."""
        self._run("redis.sh", "stop")

    # ----------------------------------------------------------------- cluster
    def cluster_start(self) -> float:
        """Start the 3-node cluster (replication factor 3, min.insync.replicas 2)."""
        t0 = time.monotonic()
        self._run("kafka-cluster.sh", "start", timeout=400)
        self.started.add("cluster")
        return time.monotonic() - t0

    def cluster_kill(self, node: int) -> None:
        """SIGKILL cluster node ``node`` (1..3)."""
        self._run("kafka-cluster.sh", "kill", str(node))

    def cluster_start_node(self, node: int) -> None:
        """Start cluster node ``node`` again."""
        self._start("kafka-cluster.sh", "start-node", str(node))

    def cluster_stop(self) -> None:
        """Stop the cluster and delete its data."""
        self._run("kafka-cluster.sh", "stop")
        self.started.discard("cluster")

    def close(self) -> None:
        """Stop everything this object started (errors ignored: the run is over)."""
        for name, stop in (("cluster", self.cluster_stop), ("kafka", self.kafka_stop), ("redis", self.redis_stop)):
            if name in self.started:
                try:
                    stop()
                except (ConfigError, subprocess.TimeoutExpired):
                    pass
        self.started.clear()
