"""A worker on the 3-node cluster of ops/kafka-cluster.sh keeps scoring when one broker is killed.

Replication factor 3 and min.insync.replicas 2: with one node down, acks=all writes still
succeed, leadership moves to the survivors, and no event is lost.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from .conftest import Topics, WorkerProcess, collect, event, produce

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SCRIPT = ["bash", str(REPO / "ops" / "kafka-cluster.sh")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    port = os.environ.get("KAFKA_CLUSTER_PORT") or str(int(os.environ.get("KAFKA_PORT", "9092")) + 100)
    env = {**os.environ, "KAFKA_CLUSTER_PORT": port, "KAFKA_CLUSTER_DIR": str(tmp_path_factory.mktemp("kcluster"))}
    started = subprocess.run([*SCRIPT, "start"], env=env, capture_output=True, text=True, timeout=240)
    if started.returncode != 0:
        subprocess.run([*SCRIPT, "stop"], env=env, capture_output=True, timeout=120)
        msg = f"cannot start the 3-node Kafka cluster on {port}: {started.stderr.strip()[-2000:]}"
        pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
    bootstrap = subprocess.run([*SCRIPT, "bootstrap"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    yield bootstrap, env
    subprocess.run([*SCRIPT, "stop"], env=env, capture_output=True, timeout=120)


def test_worker_survives_one_broker_of_three(cluster, servers, registry: Path, feature_rows, tmp_path: Path) -> None:
    bootstrap, env = cluster
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"kc-{tag}-features", f"kc-{tag}-scores", f"kc-{tag}-dlq", f"kc-{tag}-group")
    worker = WorkerProcess(registry, topics, {**servers, "bootstrap": bootstrap}, tmp_path / "worker.log", "--batch-size", "50")
    try:
        # The worker creates its topics, replicated 3 times. Each AdminClient may ask another
        # broker, whose metadata can lag the one that created them: wait until one answer
        # holds both topics, then check their replicas in that same answer.
        deadline = time.monotonic() + 60
        md: dict[str, Any] = {}
        while time.monotonic() < deadline:
            md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
            if all(t in md and md[t].partitions for t in (topics.features, topics.scores)):
                break
            time.sleep(0.5)
        assert topics.features in md, f"the worker's topics are not visible after 60 s: {sorted(md)}"
        assert {len(p.replicas) for p in md[topics.features].partitions.values()} == {3}

        produce(bootstrap, topics.features, [event(i, feature_rows[i % 200], prefix=tag) for i in range(300)])
        collect(bootstrap, topics.scores, lambda d: len({x["event_id"] for x in d}) >= 100, timeout=120)
        killed = subprocess.run([*SCRIPT, "kill", "1"], env=env, capture_output=True, text=True, timeout=30)
        assert killed.returncode == 0, killed.stderr
        produce(bootstrap, topics.features, [event(i, feature_rows[i % 200], prefix=tag) for i in range(300, 600)])
        docs = collect(bootstrap, topics.scores, lambda d: len({x["event_id"] for x in d}) >= 600, timeout=180)
        assert {d["event_id"] for d in docs} == {f"{tag}-{i}" for i in range(600)}  # none lost
        assert worker.proc.poll() is None, "the worker exited when a broker died"
    finally:
        code = worker.terminate()
    assert code == 0
