"""KafkaSink tracks delivery per batch on the real broker: a batch's confirmation reports that
batch's refusals only, and waits for its own messages, not for a later batch's."""

from __future__ import annotations

import os

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from stream_ensemble.adapters.kafka_sink import KafkaSink
from stream_ensemble.config import KafkaConfig

from .conftest import Topics, collect

pytestmark = pytest.mark.integration


def test_refusals_are_reported_to_their_own_batch(servers, topics: Topics) -> None:
    admin = AdminClient({"bootstrap.servers": servers["bootstrap"]})
    entry = ConfigEntry("max.message.bytes", "4096", incremental_operation=AlterConfigOpType.SET)
    for fut in admin.incremental_alter_configs([ConfigResource("topic", topics.dlq, incremental_configs=[entry])]).values():
        fut.result(timeout=30)
    sink = KafkaSink(KafkaConfig(bootstrap=servers["bootstrap"], delivery_timeout_s=20.0))
    big = os.urandom(20_000)  # incompressible: refused by the broker (delivery report), not by the client
    sink.send(topics.dlq, b"big", big, batch=1)
    # the others on another topic (a record batch of the small-limit topic would be refused whole)
    for i in range(50):
        sink.send(topics.features, f"b1-{i}".encode(), b'{"n": 1}', batch=1)
    for i in range(50):
        sink.send(topics.features, f"b2-{i}".encode(), b'{"n": 2}', batch=2)
    assert sink.flush_and_confirm(20, batch=2) == [], "batch 2 has no refusal of its own"
    (refused,) = sink.flush_and_confirm(20, batch=1)
    assert refused.value == big and refused.key == b"big" and "too large" in refused.reason.lower()
    assert sink.flush_and_confirm(5, batch=1) == [] and sink.flush_and_confirm(5) == []
    got = collect(servers["bootstrap"], topics.features, lambda d: len(d) >= 100, timeout=30)
    assert sorted(d["n"] for d in got) == [1] * 50 + [2] * 50
