"""Experiment routing in a real worker: split by sticky hash, live switch to shadow mode."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import redis
from scipy.stats import binom

from .conftest import Topics, WorkerProcess, collect, produce

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "scored_event.json"


def _events(start: int, n: int, rows: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(start, start + n):
        doc = {"event_id": f"r-{i}", "entity_id": f"u{i}", "timestamp": time.time(), "features": rows[i % len(rows)]}
        out.append((doc["entity_id"].encode(), orjson.dumps(doc)))
    return out


def test_split_then_shadow(servers: dict[str, str], topics: Topics, registry: Path, tmp_path: Path,
                           feature_rows: list[dict[str, Any]]) -> None:
    from stream_ensemble.adapters.kafka import ensure_topics
    from stream_ensemble.core.experiments.assignment import assign_arms, entity_hashes
    from stream_ensemble.core.registry import Registry

    reg = tmp_path / "registry"
    shutil.copytree(registry, reg)
    payload, manifest = Registry(reg).load("ensembles", "default")
    Registry(reg).save("ensembles", "default", payload, {k: v for k, v in manifest.items() if k not in ("version", "sha256")})
    shadow = f"{topics.scores}-shadow"
    ensure_topics(servers["bootstrap"], [(shadow, 3)])
    client = redis.Redis.from_url(servers["redis"])
    key = "se:ab:default"
    client.hset(key, mapping={"experiment": "exp-route", "champion": "default@v1", "challengers": "default@v2=30",
                              "mode": "split", "salt": "s1", "status": "running"})
    worker = WorkerProcess(reg, topics, servers, tmp_path / "worker.log", "--shadow-topic", shadow, "--cache-ttl", "0")
    try:
        n = 600
        produce(servers["bootstrap"], topics.features, _events(0, n, feature_rows))
        docs = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= n, timeout=120)
        assert len(docs) == n and len({d["event_id"] for d in docs}) == n
        validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
        for d in docs:
            d.pop("_received")
            validator.validate(d)
            assert d["experiment"] == "exp-route"
            assert d["ensemble_version"] == ("default@v1" if d["arm"] == "champion" else "default@v2")
        # the arm is the sticky hash's: recompute it here from salt + entity_id
        expected = assign_arms(entity_hashes("s1", [d["entity_id"] for d in docs]), {"champion": 70.0, "default@v2": 30.0})
        assert [d["arm"] for d in docs] == [["champion", "default@v2"][i] for i in expected]
        k = sum(d["arm"] == "default@v2" for d in docs)
        lo, hi = binom.ppf(0.005, n, 0.3), binom.ppf(0.995, n, 0.3)
        assert lo <= k <= hi, (k, lo, hi)

        client.hset(key, "mode", "shadow")  # live: seen within a second
        time.sleep(2.0)
        produce(servers["bootstrap"], topics.features, _events(n, 300, feature_rows))
        every = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= n + 300, timeout=120)
        main = [d for d in every if int(d["event_id"].split("-")[1]) >= n]
        assert len(main) == 300 and all(d["arm"] == "champion" and d["ensemble_version"] == "default@v1" for d in main)
        want = {d["event_id"] for d in main if ["champion", "default@v2"][
            assign_arms(entity_hashes("s1", [d["entity_id"]]), {"champion": 70.0, "default@v2": 30.0})[0]] == "default@v2"}
        side = collect(servers["bootstrap"], shadow, lambda d: len(d) >= len(want), timeout=60)
        assert {d["event_id"] for d in side} == want and len(side) == len(want) > 0
        assert all(d["arm"] == "default@v2" and d["ensemble_version"] == "default@v2" for d in side)
    finally:
        client.delete(key)
        assert worker.terminate() == 0
