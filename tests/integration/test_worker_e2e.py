"""End-to-end against the real broker and Redis: nothing lost, health, cache, SIGTERM."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import redis

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / f"{name}.json").read_text()))


def _ids(docs: list[dict[str, Any]]) -> set[str]:
    return {d["event_id"] for d in docs}


MALFORMED = [
    b"not json",
    b'{"event_id": "bad-1", "features": {',
    orjson.dumps({"event_id": "bad-2", "entity_id": "x", "timestamp": 1, "features": "nope"}),
    orjson.dumps({"entity_id": "x", "timestamp": 1, "features": {"a": 1}}),
    orjson.dumps({"event_id": "bad-4", "entity_id": "x", "timestamp": -5, "features": {"a": 1}}),
    orjson.dumps([1, 2, 3]),
]


def test_valid_scored_malformed_dead_lettered_none_lost(servers, topics: Topics, start_worker, feature_rows) -> None:
    n = 300
    bad_typed = orjson.dumps({"event_id": "bad-5", "entity_id": "x", "timestamp": 1,
                              "features": {**feature_rows[0], "mean_radius": "twelve"}})
    malformed = [*MALFORMED, bad_typed]
    valid = [event(i, feature_rows[i % len(feature_rows)], prefix="a") for i in range(n)]
    produce(servers["bootstrap"], topics.features, valid[:150] + [(b"k", m) for m in malformed] + valid[150:])
    worker = start_worker()
    scores = collect(servers["bootstrap"], topics.scores, lambda d: len(_ids(d)) >= n)
    dlq = collect(servers["bootstrap"], topics.dlq, lambda d: len(d) >= len(malformed), timeout=30)
    assert worker.terminate() == 0
    assert _ids(scores) == {f"a-{i}" for i in range(n)}
    assert len(dlq) == len(malformed)
    assert sorted(base64.b64decode(d["original"]) for d in dlq) == sorted(malformed)
    assert all(d["reason"] and d["source"]["topic"] == topics.features for d in dlq)
    by_type = {d["error_type"] for d in dlq}
    assert {"invalid_json", "schema", "feature_type"} <= by_type
    scored_v, dlq_v = _schema("scored_event"), _schema("dlq_record")
    for d in scores[:50]:
        d.pop("_received")
        assert not list(scored_v.iter_errors(d)), d
        assert d["models_used"] and set(d["models_used"]) <= set(d["model_probabilities"])
        assert d["explanation"]["members"]
    for d in dlq:
        d.pop("_received")
        assert not list(dlq_v.iter_errors(d))


def test_model_marked_down_disappears_within_2s(servers, topics: Topics, start_worker, feature_rows, rclient: redis.Redis) -> None:
    worker = start_worker("--cache-ttl", "0", "--batch-size", "50")
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i], prefix="w") for i in range(20)])
    warm = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 20)
    victim_tag = warm[0]["models_used"][0]
    victim = victim_tag.split("@")[0]
    # The operator interface: a plain HSET, as `redis-cli HSET se:health <model> down` does.
    marked_at = time.time()
    rclient.hset("se:health", victim, "down")
    deadline = time.time() + 6
    i = 100
    while time.time() < deadline:
        produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i % 500], prefix="w")])
        i += 1
        time.sleep(0.1)
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len(_ids(d)) >= 20 + (i - 100))
    assert worker.terminate() == 0
    after = [d for d in docs if d["scored_at"] > marked_at + 2.0]
    assert after, "no events scored more than 2 s after the change"
    assert all(victim_tag not in d["models_used"] for d in after)
    assert all(victim_tag not in d["model_probabilities"] for d in after)
    # and it did not need a restart: same worker process served before and after
    assert any(victim_tag in d["models_used"] for d in warm)
    first_without = min(d["scored_at"] for d in docs if d["scored_at"] > marked_at and victim_tag not in d["models_used"])
    assert first_without - marked_at <= 2.0


def test_repeated_event_is_served_from_cache(servers, topics: Topics, start_worker, feature_rows, rclient: redis.Redis) -> None:
    worker = start_worker("--batch-size", "10")
    # A feature vector no earlier test can have cached.
    features = {**feature_rows[3], "mean_radius": 10.0 + time.time() % 1}
    produce(servers["bootstrap"], topics.features, [event(1, features, prefix="c")])
    first = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 1)
    produce(servers["bootstrap"], topics.features, [event(2, features, prefix="c")])
    both = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 2)
    assert worker.terminate() == 0
    a, b = sorted(both, key=lambda d: d["event_id"])
    assert first[0]["cache_hit"] is False
    assert (a["event_id"], b["event_id"]) == ("c-1", "c-2")
    assert b["cache_hit"] is True
    assert b["probability"] == a["probability"] and b["models_used"] == a["models_used"]
    assert rclient.keys("se:cache:*"), "the cache entry should be in Redis"
    assert all(rclient.ttl(k) > 0 for k in rclient.keys("se:cache:*"))


def test_sigterm_mid_stream_then_restart_loses_nothing(servers, topics: Topics, start_worker, feature_rows) -> None:
    import threading

    n = 3000
    events = [event(i, feature_rows[i % len(feature_rows)], prefix="s") for i in range(n)]

    def trickle() -> None:  # the stream keeps flowing while the worker is stopped
        for k in range(0, n, 100):
            produce(servers["bootstrap"], topics.features, events[k : k + 100])
            time.sleep(0.1)

    first = start_worker("--batch-size", "50", "--cache-ttl", "0")
    producer = threading.Thread(target=trickle)
    producer.start()
    partial = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 200)
    assert first.terminate() == 0, "SIGTERM must finish the batch, commit and exit 0"
    stopped_at = time.time()
    assert len(partial) >= 200
    producer.join()
    second = start_worker("--batch-size", "500", "--cache-ttl", "0")
    docs = collect(servers["bootstrap"], topics.scores, lambda d: len(_ids(d)) >= n, timeout=120)
    assert second.terminate() == 0
    assert _ids(docs) == {f"s-{i}" for i in range(n)}
    assert any(d["scored_at"] > stopped_at for d in docs), "the restart scored the rest"
    # offsets were committed at shutdown: the restart did not re-score from offset 0
    assert len(docs) < 2 * n
