"""Hot deploy on the real broker and Redis: `deploy`, a refused (tampered) version, `rollback`,
one running worker, nothing lost, every batch scored by one version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import Topics, WorkerProcess, collect, event, produce

pytestmark = pytest.mark.integration


def _copy_versions(registry: Path, root: Path) -> Path:
    """The session registry plus default@v2 (same content as v1) and default@v3 (tampered)."""
    from stream_ensemble.core.registry import Registry

    reg_dir = root / "registry"
    shutil.copytree(registry, reg_dir)
    reg = Registry(reg_dir)
    payload, manifest = reg.load("ensembles", "default", 1)
    keep = {k: v for k, v in manifest.items() if k not in ("id", "version", "sha256", "created_at", "artifact")}
    assert reg.save("ensembles", "default", payload, keep).version == 2
    bad = reg.save("ensembles", "default", payload, keep)
    artifact = reg_dir / "ensembles" / "default" / f"v{bad.version}" / str(manifest["artifact"])
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    return reg_dir


def _cli(servers: dict[str, str], prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SE_KEY_PREFIX": prefix, "SE_REDIS_URL": servers["redis"]}
    return subprocess.run([sys.executable, "-m", "stream_ensemble", *args], capture_output=True, text=True, timeout=60, env=env)


def _first_seen(docs: list[dict[str, Any]], tag: str, after: float) -> float:
    # scored_at: the worker's clock (same machine), per batch; _received is re-read time at the end
    return min(d["scored_at"] for d in docs if d["ensemble_version"] == tag and d["scored_at"] >= after) - after


def test_deploy_refuse_rollback_live_nothing_lost(servers, topics: Topics, registry: Path, feature_rows, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reg_dir = _copy_versions(registry, tmp_path)
    prefix = f"it{uuid.uuid4().hex[:6]}"  # own deploy keys: nothing shared with other tests
    monkeypatch.setenv("SE_KEY_PREFIX", prefix)
    worker = WorkerProcess(reg_dir, topics, servers, tmp_path / "worker.log", "--ensemble-version", "1",
                           "--batch-size", "20", "--cache-ttl", "0")
    stop = threading.Event()
    sent: list[str] = []

    def stream() -> None:  # a steady trickle through every swap
        i = 0
        while not stop.is_set():
            batch = [event(i + k, feature_rows[(i + k) % len(feature_rows)], prefix="d") for k in range(10)]
            produce(servers["bootstrap"], topics.features, batch)
            sent.extend(f"d-{i + k}" for k in range(10))
            i += 10
            time.sleep(0.1)

    producer = threading.Thread(target=stream)
    try:
        producer.start()
        docs = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 30)
        assert {d["ensemble_version"] for d in docs} == {"default@v1"}
        refused_here = _cli(servers, prefix, "deploy", "default@v3", "--registry", str(reg_dir))
        assert refused_here.returncode == 2 and "sha256" in refused_here.stderr  # checked before it is written
        first = _cli(servers, prefix, "deploy", "default@v1", "--registry", str(reg_dir), "--who", "ci", "--why", "pin")
        assert first.returncode == 0 and first.stdout.strip() == "default: (none) -> default@v1", first.stderr
        out = _cli(servers, prefix, "deploy", "default@v2", "--registry", str(reg_dir), "--who", "ci", "--why", "roll forward",
                   "--json")
        assert out.returncode == 0, out.stderr
        entry = orjson.loads(out.stdout)
        assert (entry["fleet"], entry["previous"], entry["version"]) == ("default", "default@v1", "default@v2")
        t_v2 = entry["when"]  # when se:deploy:default was written (the CLI's own start-up is not the worker's)
        docs = collect(servers["bootstrap"], topics.scores, lambda d: any(x["ensemble_version"] == "default@v2" for x in d))
        t_v3 = time.time()
        forced = _cli(servers, prefix, "deploy", "default@v3", "--force", "--why", "tampered on purpose")
        assert forced.returncode == 0, forced.stderr
        deadline = time.monotonic() + 10
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and "default@v3" not in status.get("refused", {}):
            status = orjson.loads(_cli(servers, prefix, "deploy", "status", "default", "--json").stdout)
            time.sleep(0.2)
        assert "sha256" in status["refused"]["default@v3"]["reason"], status
        assert status["deployed"] == "default@v3"
        t_back = time.time()
        back = _cli(servers, prefix, "deploy", "rollback", "default", "--why", "v3 refused")
        assert back.returncode == 0, back.stderr
        assert back.stdout.strip() == "default: default@v3 -> default@v2 (rollback)"
        docs = collect(servers["bootstrap"], topics.scores,
                       lambda d: any(x["ensemble_version"] == "default@v2" and x["_received"] > t_back for x in d))
        again = _cli(servers, prefix, "deploy", "rollback", "default", "--json")  # rollbacks walk back, not to and fro
        assert again.returncode == 0 and orjson.loads(again.stdout)["version"] == "default@v1", again.stderr
        t_v1 = orjson.loads(again.stdout)["when"]
        docs = collect(servers["bootstrap"], topics.scores,
                       lambda d: any(x["ensemble_version"] == "default@v1" and x["_received"] > t_v1 for x in d))
        time.sleep(0.5)
    finally:
        stop.set()
        producer.join()
    n_sent = len(sent)
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= n_sent)
    assert worker.terminate() == 0
    log = (tmp_path / "worker.log").read_text()
    assert {d["event_id"] for d in docs} == set(sent)  # nothing lost across three swaps
    assert not any(d["ensemble_version"] == "default@v3" for d in docs)  # the refused version never served
    assert log.count("\"event\":\"deploy_refused\"") == 1  # one line, not one per poll
    by_batch: dict[float, set[str]] = defaultdict(set)
    for d in docs:
        by_batch[d["scored_at"]].add(d["ensemble_version"])
    assert all(len(v) == 1 for v in by_batch.values())  # a batch is scored wholly by one version
    assert _first_seen(docs, "default@v2", t_v2) <= 2.0
    assert _first_seen(docs, "default@v1", t_v1) <= 2.0
    history = orjson.loads(_cli(servers, prefix, "deploy", "status", "default", "--json").stdout)["history"]
    assert [(e["action"], e["version"]) for e in history] == [
        ("rollback", "default@v1"), ("rollback", "default@v2"), ("deploy", "default@v3"), ("deploy", "default@v2"),
        ("deploy", "default@v1")]
    assert history[3]["who"] == "ci" and history[3]["why"] == "roll forward" and history[3]["when"] == t_v2
    assert history[2]["why"] == "tampered on purpose" and t_v3 <= history[2]["when"] <= t_back
    nothing = _cli(servers, prefix, "deploy", "rollback", "default")  # before v1 there is nothing
    assert nothing.returncode == 2 and "nothing to roll back to" in nothing.stderr
