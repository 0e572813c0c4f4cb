"""Produce errors on the real broker never stop the worker (issue: an 800 KB bad event crash-looped)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import jsonschema
import orjson
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration
DLQ_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "dlq_record.json").read_text())


def test_800kb_malformed_event_is_dead_lettered_capped_and_the_good_ones_scored(servers, topics: Topics, start_worker,
                                                                                feature_rows) -> None:
    n = 300
    big = b'{"event_id": "huge", "features": {"x": "' + b"A" * 800_000  # ~800 KB, not JSON
    values = [event(i, feature_rows[i % len(feature_rows)], prefix="g") for i in range(n // 2)]
    values += [(b"huge-key", big)]
    values += [event(i, feature_rows[i % len(feature_rows)], prefix="g") for i in range(n // 2, n)]
    produce(servers["bootstrap"], topics.features, values)
    worker = start_worker("--batch-size", "1000", "--cache-ttl", "0")
    scores = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= n, timeout=60)
    dlq = collect(servers["bootstrap"], topics.dlq, lambda d: len(d) >= 1, timeout=30)
    assert worker.proc.poll() is None, f"the worker exited: {worker.log.read_text()[-2000:]}"
    assert worker.terminate() == 0
    assert {d["event_id"] for d in scores} == {f"g-{i}" for i in range(n)}
    (rec,) = [d for d in dlq]
    rec.pop("_received")
    jsonschema.validate(rec, DLQ_SCHEMA)
    assert rec["original_truncated"] is True and rec["original_size"] == len(big)
    assert rec["original_sha256"] == hashlib.sha256(big).hexdigest()
    assert big.startswith(base64.b64decode(rec["original"]))
    assert len(orjson.dumps(rec)) <= 900_000 + 64  # the cap (plus the "_received" the reader adds, popped)
    print(f"800 KB event: {len(scores)} good scored, DLQ record {len(orjson.dumps(rec))} bytes "
          f"(original {rec['original_size']} bytes, {len(base64.b64decode(rec['original']))} kept)")


def test_dlq_topic_refusing_the_record_gets_it_without_the_original(servers, topics: Topics, start_worker,
                                                                     feature_rows) -> None:
    # A DLQ topic with a small max.message.bytes: the broker refuses the full record (delivery
    # report MSG_SIZE_TOO_LARGE); the worker sends it again without the original bytes.
    admin = AdminClient({"bootstrap.servers": servers["bootstrap"]})
    entry = ConfigEntry("max.message.bytes", "4096", incremental_operation=AlterConfigOpType.SET)
    for fut in admin.incremental_alter_configs([ConfigResource("topic", topics.dlq, incremental_configs=[entry])]).values():
        fut.result(timeout=30)
    bad = b"{not json " + os.urandom(20_000)  # incompressible: lz4 cannot bring it under 4 KB
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i]) for i in range(20)] + [(None, bad)])
    worker = start_worker("--batch-size", "100", "--cache-ttl", "0")
    scores = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 20, timeout=60)
    dlq = collect(servers["bootstrap"], topics.dlq, lambda d: len(d) >= 1, timeout=30)
    assert worker.proc.poll() is None, f"the worker exited: {worker.log.read_text()[-2000:]}"
    assert worker.terminate() == 0
    assert len({d["event_id"] for d in scores}) == 20
    (rec,) = dlq
    assert rec["original"] == "" and rec["original_size"] == len(bad) and "DLQ record refused" in rec["reason"]
    assert rec["original_sha256"] == hashlib.sha256(bad).hexdigest()
    assert "produce_refused" in worker.log.read_text()
