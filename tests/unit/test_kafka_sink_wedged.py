"""KafkaSink replaces a producer that stops reporting, and sends the affected batch again whole.

A stand-in for librdkafka's Producer is the only way to make a producer swallow messages on
purpose; the replacement's real-broker behaviour is covered by ``bench faults`` (broker down
90 s). The sink's logic under test is the bookkeeping: nothing confirmed that was not reported,
late reports of the old producer count nowhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from stream_ensemble.adapters import kafka_sink
from stream_ensemble.adapters.kafka_sink import KafkaSink
from stream_ensemble.config import KafkaConfig


class _Msg:
    def __init__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._t, self._k, self._v = topic, key, value

    def topic(self) -> str:
        return self._t

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes:
        return self._v


class _Producer:
    """Acknowledges on poll when ``reports``; else holds every message and never reports."""

    def __init__(self, reports: bool) -> None:
        self.reports = reports
        self.queued: list[tuple[Any, _Msg]] = []
        self.acked: list[bytes] = []
        self.purged = False

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        self.queued.append((on_delivery, _Msg(topic, key, value)))

    def poll(self, timeout: float) -> int:
        if not self.reports:
            return 0
        done, self.queued = self.queued, []
        for cb, msg in done:
            self.acked.append(msg.value())
            cb(None, msg)
        return len(done)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return len(self.queued)

    def purge(self) -> None:
        self.purged = True  # a wedged producer: purge reports nothing either


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> tuple[KafkaSink, list[_Producer]]:
    made: list[_Producer] = []

    def make(self: KafkaSink) -> _Producer:
        made.append(_Producer(reports=len(made) > 0))  # the first one is wedged
        return made[-1]

    monkeypatch.setattr(KafkaSink, "_producer", make)
    monkeypatch.setattr(kafka_sink, "WEDGED_GRACE_S", 0.1)
    return KafkaSink(KafkaConfig(delivery_timeout_s=0.2)), made


def test_a_wedged_producer_is_replaced_and_the_batch_sent_again_whole(sink: tuple[KafkaSink, list[_Producer]]) -> None:
    s, made = sink
    for i in range(3):
        s.send("scores", b"k", b"v%d" % i, batch=7)
    assert s.flush_and_confirm(timeout_s=3.0, batch=7) == []
    assert s.replaced == 1 and made[0].purged
    assert sorted(made[1].acked) == [b"v0", b"v1", b"v2"]


def test_late_reports_of_the_old_producer_count_nowhere(sink: tuple[KafkaSink, list[_Producer]]) -> None:
    s, made = sink
    s.send("scores", b"k", b"a", batch=1)
    s.send("scores", b"k", b"b", batch=2)
    assert s.flush_and_confirm(timeout_s=3.0, batch=1) == []
    # The old producer wakes up and reports batch 2's message: it must not count for batch 2.
    for cb, msg in made[0].queued:
        cb(None, msg)
    assert s._batches[2].pending == 0 and [m for *m, _ in s._batches[2].retry] == [["scores", b"k", b"b"]]
    assert s.flush_and_confirm(timeout_s=3.0, batch=2) == []
    assert sorted(made[1].acked) == [b"a", b"b"]


def test_a_producer_that_reports_is_never_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KafkaSink, "_producer", lambda self: _Producer(reports=True))
    s = KafkaSink(KafkaConfig(delivery_timeout_s=0.2))
    for i in range(5):
        s.send("scores", None, b"x", batch=i)
        assert s.flush_and_confirm(timeout_s=1.0, batch=i) == []
    assert s.replaced == 0


def test_a_fatal_error_replaces_the_producer_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaError

    made: list[_Producer] = []

    def make(self: KafkaSink) -> _Producer:
        made.append(_Producer(reports=True))
        return made[-1]

    monkeypatch.setattr(KafkaSink, "_producer", make)
    s = KafkaSink(KafkaConfig(delivery_timeout_s=5.0))
    fatal = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    s.send("scores", None, b"a", batch=1)
    s.send("scores", None, b"b", batch=2)
    for d in s._batches.values():  # both batches' messages came back with the fatal error
        d.pending, d.retry = 0, [("scores", None, d.sent[0][2], fatal)]
    assert s.flush_and_confirm(timeout_s=2.0, batch=1) == []
    assert s.flush_and_confirm(timeout_s=2.0, batch=2) == []
    assert s.replaced == 1 and sorted(made[1].acked) == [b"a", b"b"]
