"""A worker with a registry key, live on the real broker and Redis: a tampered version deployed
to it (code-executing pickle, manifest rewritten to match) is refused, its payload never runs,
and the signed version keeps serving every event."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import Topics, WorkerProcess, collect, event, produce
from .test_hot_deploy import _cli

pytestmark = pytest.mark.integration

KEY = "operator key for the live test"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def _signed_copy_with_tampered_v2(registry: Path, root: Path, marker: Path) -> Path:
    from stream_ensemble.core.registry import Registry, RegistrySecurity
    from stream_ensemble.core.registry.migrate import migrate

    reg_dir = root / "registry"
    shutil.copytree(registry, reg_dir)
    security = RegistrySecurity(key=KEY.encode())
    assert not migrate(reg_dir, security).failed  # every version signed with the key
    reg = Registry(reg_dir, security)
    payload, manifest = reg.load("ensembles", "default", 1)
    v2 = reg_dir / "ensembles" / "default" / f"v{reg.save('ensembles', 'default', payload, manifest).version}"
    v2.chmod(0o755)
    for f in v2.iterdir():
        f.chmod(0o644)
    evil = pickle.dumps(_Payload(marker))
    doc = orjson.loads((v2 / "manifest.json").read_bytes())
    (v2 / str(doc["artifact"])).unlink()
    (v2 / "ensemble.pkl").write_bytes(evil)
    doc.update(artifact="ensemble.pkl", format="pickle", sha256=hashlib.sha256(evil).hexdigest())
    (v2 / "manifest.json").write_bytes(orjson.dumps(doc))
    return reg_dir


def test_signed_worker_refuses_a_tampered_version_live(servers, topics: Topics, registry: Path, feature_rows,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "payload-ran"
    reg_dir = _signed_copy_with_tampered_v2(registry, tmp_path, marker)
    prefix = f"it{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("SE_KEY_PREFIX", prefix)
    monkeypatch.setenv("SE_REGISTRY_KEY", KEY)  # the worker and the CLI hold the key
    monkeypatch.delenv("SE_REGISTRY_KEY_FILE", raising=False)
    worker = WorkerProcess(reg_dir, topics, servers, tmp_path / "worker.log", "--ensemble-version", "1",
                           "--batch-size", "20", "--cache-ttl", "0")
    first = [event(i, feature_rows[i % len(feature_rows)], prefix="s") for i in range(40)]
    produce(servers["bootstrap"], topics.features, first)
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 40)
    assert {d["ensemble_version"] for d in docs} == {"default@v1"}  # signed: served
    checked = _cli(servers, prefix, "deploy", "default@v2", "--registry", str(reg_dir))
    assert checked.returncode == 2 and "signature does not match" in checked.stderr, checked.stderr
    forced = _cli(servers, prefix, "deploy", "default@v2", "--force", "--why", "tampered on purpose")
    assert forced.returncode == 0, forced.stderr
    deadline, status = time.monotonic() + 15, {}
    while time.monotonic() < deadline and "default@v2" not in status.get("refused", {}):
        status = orjson.loads(_cli(servers, prefix, "deploy", "status", "default", "--json").stdout)
        time.sleep(0.2)
    assert "signature does not match" in status["refused"]["default@v2"]["reason"], status
    later = [event(i, feature_rows[i % len(feature_rows)], prefix="s") for i in range(40, 80)]
    produce(servers["bootstrap"], topics.features, later)
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= 80)
    assert worker.terminate() == 0
    assert {d["event_id"] for d in docs} == {f"s-{i}" for i in range(80)}  # nothing lost
    assert {d["ensemble_version"] for d in docs} == {"default@v1"}  # the tampered version never served
    assert not marker.exists()  # and its payload never ran
    assert (tmp_path / "worker.log").read_text().count("\"event\":\"deploy_refused\"") == 1
