"""Fixtures for tests against the real Kafka broker and Redis started by ``ops/up.sh``.

Under ``CI`` an unreachable server fails the suite; locally the tests are skipped with the
command that starts the servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

# The same variables as the Makefile and ops/: SE_TEST_* if set, else derived from the ports.
KAFKA_PORT = os.environ.get("KAFKA_PORT", "9092")
REDIS_PORT = os.environ.get("REDIS_PORT", "6379")
BOOTSTRAP = os.environ.get("SE_TEST_BOOTSTRAP") or f"127.0.0.1:{KAFKA_PORT}"
# A dedicated Redis database so tests never touch an operator's keys in db 0.
REDIS_URL = os.environ.get("SE_TEST_REDIS_URL") or f"redis://127.0.0.1:{REDIS_PORT}/15"
CONNECT_TIMEOUT_S = float(os.environ.get("SE_TEST_CONNECT_TIMEOUT", "10"))


def free_port_block(preferred: int, n: int) -> int:
    """``preferred`` when its ``n`` consecutive ports can be bound on 127.0.0.1, else the first such block
    from 20000 up (below Linux's ephemeral range 32768-60999, where an outgoing connection of any
    process may hold a port by chance: CI once lost a Redis Cluster node to that)."""

    def free(p: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no obstacle
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
        return True

    for start in (preferred, *range(20000, 32000, 10)):
        if all(free(start + k) for k in range(n)):
            return start
    raise RuntimeError(f"no {n} free consecutive ports near {preferred} or in 20000-32000")


def _unreachable(what: str, exc: BaseException) -> None:
    msg = f"{what} unreachable ({exc}); start the servers with `KAFKA_PORT={KAFKA_PORT} REDIS_PORT={REDIS_PORT} make up`"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def servers() -> dict[str, str]:
    try:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=CONNECT_TIMEOUT_S)
    except KafkaException as exc:
        _unreachable(f"Kafka at {BOOTSTRAP}", exc)
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.flushdb()
    except redis.RedisError as exc:
        _unreachable(f"Redis at {REDIS_URL}", exc)
    return {"bootstrap": BOOTSTRAP, "redis": REDIS_URL}


@pytest.fixture()
def rclient(servers: dict[str, str]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers["redis"])
    client.delete("se:health")
    yield client
    client.delete("se:health")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real registry: 4 members trained on the bundled dataset."""
    from stream_ensemble.core.data import load_bundled
    from stream_ensemble.core.members.families import default_pool
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training import train

    root = tmp_path_factory.mktemp("registry")
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes", "decision_tree", "knn", "mlp"}]
    train(load_bundled(), specs, Registry(root))
    return root


@dataclass
class Topics:
    features: str
    scores: str
    dlq: str
    group: str


@pytest.fixture()
def topics(servers: dict[str, str]) -> Topics:
    from stream_ensemble.adapters.kafka import ensure_topics

    tag = uuid.uuid4().hex[:8]
    t = Topics(f"it-{tag}-features", f"it-{tag}-scores", f"it-{tag}-dlq", f"it-{tag}-group")
    ensure_topics(servers["bootstrap"], [(t.features, 3), (t.scores, 3), (t.dlq, 1)])
    return t


class WorkerProcess:
    """A real ``stream-ensemble serve`` process."""

    def __init__(self, registry: Path, topics: Topics, servers: dict[str, str], log: Path, *extra: str) -> None:
        self.log = log
        cmd = [
            sys.executable, "-m", "stream_ensemble", "--log-format", "json", "serve",
            "--bootstrap", servers["bootstrap"], "--redis-url", servers["redis"], "--registry", str(registry),
            "--features-topic", topics.features, "--scores-topic", topics.scores, "--dlq-topic", topics.dlq,
            "--group", topics.group, "--partitions", "3", *extra,
        ]
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=self._fh)

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._fh.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()


@pytest.fixture()
def start_worker(registry: Path, topics: Topics, servers: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*extra: str) -> WorkerProcess:
        w = WorkerProcess(registry, topics, servers, tmp_path / f"worker-{len(started)}.log", *extra)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


def produce(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for key, value in values:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0


def event(i: int, features: dict[str, Any], prefix: str = "ev") -> tuple[bytes, bytes]:
    doc = {"event_id": f"{prefix}-{i}", "entity_id": f"entity-{i % 17}", "timestamp": time.time(), "features": features}
    return doc["entity_id"].encode(), orjson.dumps(doc)


def collect(bootstrap: str, topic: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 90) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning until ``done(docs)`` or the timeout."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    docs: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(docs):
            for msg in c.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    doc = orjson.loads(msg.value())
                    doc["_received"] = time.time()
                    docs.append(doc)
    finally:
        c.close()
    return docs


@pytest.fixture(scope="session")
def feature_rows() -> list[dict[str, Any]]:
    from stream_ensemble.core.data import load_bundled

    return load_bundled().records()
