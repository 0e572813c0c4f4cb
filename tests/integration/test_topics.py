"""`topics` reports and raises partition counts; `serve` warns when the features topic has fewer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import orjson
import pytest

from stream_ensemble.adapters.kafka import ensure_topics, topic_partitions

from .conftest import Topics

pytestmark = pytest.mark.integration


def test_topics_reports_and_raises_partitions(servers: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {"SE_FEATURES_TOPIC": f"tp-{tag}-f", "SE_SCORES_TOPIC": f"tp-{tag}-s", "SE_DLQ_TOPIC": f"tp-{tag}-d"}
    ensure_topics(servers["bootstrap"], [(names["SE_FEATURES_TOPIC"], 1)])  # as if auto-created by a producer
    env = {**os.environ, **names, "SE_BOOTSTRAP": servers["bootstrap"], "SE_PARTITIONS": "3"}
    cmd = [sys.executable, "-m", "stream_ensemble", "topics"]
    report = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert f"tp-{tag}-f\t1 partitions  (fewer than 3" in report.stdout
    assert f"tp-{tag}-s\t3 partitions" in report.stdout
    raised = subprocess.run([*cmd, "--raise"], env=env, capture_output=True, text=True, timeout=60)
    assert raised.returncode == 0, raised.stderr
    assert f"raised tp-{tag}-f to 3 partitions" in raised.stdout
    assert topic_partitions(servers["bootstrap"], [f"tp-{tag}-f"]) == {f"tp-{tag}-f": 3}


def test_serve_warns_when_features_has_fewer_partitions(servers, topics: Topics, start_worker) -> None:
    worker = start_worker("--partitions", "5")  # the fixture created 3
    deadline = time.monotonic() + 60
    warned: list[dict] = []
    while time.monotonic() < deadline and not warned:
        time.sleep(0.5)
        warned = [d for d in map(orjson.loads, worker.log.read_bytes().splitlines()) if d.get("event") == "partitions"]
    assert worker.terminate() == 0
    assert warned and warned[0]["level"] == "warning" and warned[0]["partitions"] == 3 and warned[0]["asked"] == 5
