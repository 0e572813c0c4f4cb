"""The input contract through the real worker, broker and Redis: each poison event lands in the
DLQ with its original bytes and its error type, every good neighbour is scored clean, a per-event
``explain: full`` is capped, and a nonce field does not defeat the Redis cache."""

from __future__ import annotations

import base64
import random
import time
from typing import Any

import orjson
import pytest

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration


def _doc(eid: str, features: dict[str, Any], **extra: object) -> bytes:
    return orjson.dumps({"event_id": eid, "entity_id": "poison", "timestamp": time.time(), "features": features, **extra})


def test_poison_events_are_dead_lettered_alone_on_the_real_worker(servers, topics: Topics, start_worker, feature_rows) -> None:
    row = feature_rows[0]
    poison = {
        "p-string": (_doc("p-string", {**row, "mean_radius": "17.99"}), "feature_type"),
        "p-nan-string": (_doc("p-nan-string", {**row, "mean_texture": "nan"}), "feature_type"),
        "p-unknown": (_doc("p-unknown", {f"{k}_x": v for k, v in row.items()}), "too_few_features"),
        "p-nulls": (_doc("p-nulls", dict.fromkeys(row)), "too_few_features"),
        "p-1e308": (_doc("p-1e308", {**row, "mean_radius": 1e308}), "out_of_range"),
        "p-ts": (orjson.dumps({"event_id": "p-ts", "entity_id": "x", "timestamp": 1e300, "features": row}), "schema"),
        "p-empty": (b"", "empty"),
    }
    n = 120
    good = [event(i, feature_rows[i % 100], prefix="g") for i in range(n)]
    # explain full asked by a producer; the same features with a per-request nonce, twice
    # (a value unique to this run, so an earlier run's cache entry cannot answer nonce-1)
    fresh = {**feature_rows[200], "mean_radius": feature_rows[200]["mean_radius"] + random.random() * 1e-6}
    extra = [(b"e", _doc("full-1", feature_rows[3], explain="full")),
             (b"e", _doc("nonce-1", {**fresh, "request_nonce": "a1"})),
             (b"e", _doc("nonce-2", {"request_nonce": "b2", **fresh}))]
    produce(servers["bootstrap"], topics.features,
            good[:60] + [(b"k", v) for v, _ in poison.values()] + good[60:] + extra[:2])
    worker = start_worker("--cache-ttl", "600")
    want = {f"g-{i}" for i in range(n)} | {"full-1", "nonce-1"}
    first = collect(servers["bootstrap"], topics.scores, lambda d: want <= {x["event_id"] for x in d})
    produce(servers["bootstrap"], topics.features, extra[2:])  # after nonce-1 is cached
    scores = collect(servers["bootstrap"], topics.scores, lambda d: "nonce-2" in {x["event_id"] for x in d})
    dlq = collect(servers["bootstrap"], topics.dlq, lambda d: len(d) >= len(poison), timeout=30)
    assert worker.terminate() == 0
    by_id = {d["event_id"]: d for d in [*first, *scores]}
    assert {f"g-{i}" for i in range(n)} <= set(by_id) and not set(poison) & set(by_id)
    assert all(by_id[f"g-{i}"]["degraded"] is False and by_id[f"g-{i}"]["imputed"] == 0 for i in range(n))
    assert len(dlq) == len(poison)
    got = {base64.b64decode(d["original"]): d["error_type"] for d in dlq}
    assert got == {v: kind for v, kind in poison.values()}
    assert all(d["reason"] and "\n" not in d["reason"] for d in dlq)
    full = by_id["full-1"]["explanation"]
    assert full is not None and "feature_attribution" not in full  # capped at summary
    assert by_id["nonce-1"]["cache_hit"] is False and by_id["nonce-2"]["cache_hit"] is True
    assert by_id["nonce-2"]["probability"] == by_id["nonce-1"]["probability"]
    print({"produced": n + len(poison) + 3, "scored": len(by_id), "dead_lettered": len(dlq),
           "dlq_types": sorted(got.values())})
