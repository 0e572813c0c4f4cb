"""The worker's consumer group protocol (``--group-protocol``, README Faults).

By default a worker joins with the consumer group protocol (KIP-848): on the broker of ops/ its
group is a ``consumer`` group; ``--group-protocol classic`` gives a classic group. A broker that refuses that protocol (here a Kafka 4.0.2 of ops/
started with ``group.coordinator.rebalance.protocols=classic``, as a broker before 4.0 answers)
gets one warning line and a classic-protocol consumer, and every event is scored: no hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient

from .conftest import Topics, WorkerProcess, collect, event, free_port_block, produce

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _group_type(bootstrap: str, group: str) -> ConsumerGroupType:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the answer is in
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result().type


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("event") == name:
                out.append(doc)
    return out


@pytest.fixture(scope="module")
def classic_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker without the consumer group protocol (ops/kafka.sh, KAFKA_EXTRA_CONFIG)."""
    port = free_port_block(int(os.environ.get("KAFKA_PORT", "9092")) + 400, 4)
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(port + 1),
           "KAFKA_SASL_PORT": str(port + 2), "KAFKA_TLS_PORT": str(port + 3),
           "KAFKA_DATA_DIR": str(tmp_path_factory.mktemp("kclassic")), "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
           "KAFKA_EXTRA_CONFIG": "group.coordinator.rebalance.protocols=classic", "OPS_RECORD_FILE": ""}
    script = ["bash", str(REPO / "ops" / "kafka.sh")]
    started = subprocess.run([*script, "start"], env=env, capture_output=True, text=True, timeout=180)
    try:
        if started.returncode != 0:
            msg = f"cannot start a classic-only broker on {port}: {(started.stdout + started.stderr)[-2000:]}"
            pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([*script, "stop"], env=env, capture_output=True, timeout=120)


def test_worker_group_is_a_consumer_protocol_group(servers, topics: Topics, start_worker, feature_rows) -> None:
    worker = start_worker("--batch-size", "50")  # the default
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i % 200]) for i in range(100)])
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= 100, timeout=120)
    assert len({d["event_id"] for d in docs}) == 100
    assert _group_type(servers["bootstrap"], topics.group) == ConsumerGroupType.CONSUMER
    assert worker.terminate() == 0
    assert _events(worker.log, "group_protocol_fallback") == []


def test_classic_is_one_flag_away(servers, topics: Topics, start_worker, feature_rows) -> None:
    worker = start_worker("--batch-size", "50", "--group-protocol", "classic")
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i % 200]) for i in range(60)])
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= 60, timeout=120)
    assert len({d["event_id"] for d in docs}) == 60
    assert _group_type(servers["bootstrap"], topics.group) == ConsumerGroupType.CLASSIC
    assert worker.terminate() == 0


def test_broker_without_the_consumer_protocol_falls_back_to_classic(classic_broker: str, servers, registry: Path,
                                                                    feature_rows, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"gp-{tag}-features", f"gp-{tag}-scores", f"gp-{tag}-dlq", f"gp-{tag}-group")
    worker = WorkerProcess(registry, topics, {**servers, "bootstrap": classic_broker}, tmp_path / "worker.log",
                           "--batch-size", "50", "--group-protocol", "consumer")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and topics.features not in AdminClient(
                {"bootstrap.servers": classic_broker}).list_topics(timeout=10).topics:
            time.sleep(0.5)  # the worker creates its topics with 3 partitions
        produce(classic_broker, topics.features, [event(i, feature_rows[i % 200], prefix=tag) for i in range(150)])
        docs = collect(classic_broker, topics.scores, lambda d: len({x["event_id"] for x in d}) >= 150, timeout=120)
        assert len({d["event_id"] for d in docs}) == 150
        assert _group_type(classic_broker, topics.group) == ConsumerGroupType.CLASSIC
    finally:
        rc = worker.terminate()
    assert rc == 0
    (fallback,) = _events(worker.log, "group_protocol_fallback")  # one line, not one per poll
    assert "ConsumerGroupHeartbeat" in fallback["reason"]
    assert _events(worker.log, "consumer_replaced") == []
