"""KafkaSource's own decisions, on a stand-in for librdkafka's consumer (the broker paths are
in the integration tests and ``bench faults``): a fatal error replaces the consumer (a broker refusing the consumer group
protocol gets a classic one), and no
commit is sent while the consumer is not a member of its group."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from stream_ensemble.adapters import kafka as kafka_adapter
from stream_ensemble.config import KafkaConfig
from stream_ensemble.types import SourceRef


class FakeMsg:
    def __init__(self, err: KafkaError) -> None:
        self._err = err

    def error(self) -> KafkaError:
        return self._err


class FakeConsumer:
    made: list[FakeConsumer] = []

    def __init__(self, conf: dict[str, Any], logger: Any = None) -> None:
        self.conf, self.member, self.closed = conf, "m-1", False
        self.queue: list[Any] = []
        self.commits: list[Any] = []
        FakeConsumer.made.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics = topics

    def consume(self, num_messages: int = 1, timeout: float = 0.0) -> list[Any]:
        out, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return out

    def memberid(self) -> str:
        return self.member

    def commit(self, offsets: Any = None, asynchronous: bool = True) -> None:
        self.commits.append(offsets)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> kafka_adapter.KafkaSource:
    FakeConsumer.made = []
    monkeypatch.setattr(kafka_adapter, "Consumer", FakeConsumer)
    return kafka_adapter.KafkaSource(KafkaConfig(bootstrap="127.0.0.1:1", features_topic="features", group_protocol="consumer"))


def test_a_fatal_error_replaces_the_consumer(source: kafka_adapter.KafkaSource, caplog: pytest.LogCaptureFixture) -> None:
    first = source.consumer
    # librdkafka delivers a fatal error as an error event whose code is _FATAL (fatal() is false on it)
    first.queue.append(FakeMsg(KafkaError(KafkaError._FATAL)))  # type: ignore[attr-defined]
    with caplog.at_level("WARNING", logger="stream_ensemble.kafka"):
        assert source.poll_batch(100, 0.1) == []
    assert source.replaced == 1 and source.consumer is not first and first.closed  # type: ignore[attr-defined]
    assert source.consumer.topics == ["features"]  # type: ignore[attr-defined]
    assert [getattr(r, "event", None) for r in caplog.records] == ["consumer_replaced"]


def test_no_commit_while_not_a_member(source: kafka_adapter.KafkaSource, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_adapter, "COMMIT_INTERVAL_S", 0.0)
    c = source.consumer
    refs = [SourceRef("features", 0, 7), SourceRef("features", 0, 9), SourceRef("features", 1, 3)]
    c.member = ""  # type: ignore[attr-defined]  # session lost during a broker outage
    source.commit(refs, asynchronous=True)
    assert c.commits == [] and source.commits_skipped == 1  # type: ignore[attr-defined]
    c.member = "m-2"  # type: ignore[attr-defined]  # joined again
    source.commit(refs, asynchronous=True)
    (offsets,) = c.commits  # type: ignore[attr-defined]
    assert sorted((tp.partition, tp.offset) for tp in offsets) == [(0, 10), (1, 4)]


def test_group_protocol_setting_picks_the_client_properties() -> None:
    from stream_ensemble.config import load_config
    from stream_ensemble.errors import ConfigError

    assert KafkaConfig().group_protocol == "consumer"
    assert load_config(env={"SE_GROUP_PROTOCOL": "classic"}).kafka.group_protocol == "classic"
    with pytest.raises(ConfigError, match="group protocol"):
        KafkaConfig(group_protocol="eager")
    # librdkafka refuses the classic-only properties with group.protocol=consumer
    assert kafka_adapter.group_conf(KafkaConfig(group_protocol="consumer")) == {"group.protocol": "consumer"}
    classic = kafka_adapter.group_conf(KafkaConfig(group_protocol="classic", session_timeout_s=9.0))
    assert classic == {"group.protocol": "classic", "partition.assignment.strategy": "cooperative-sticky",
                       "session.timeout.ms": 9000, "heartbeat.interval.ms": 1000}


def test_a_broker_refusing_the_consumer_protocol_gets_a_classic_consumer(
        source: kafka_adapter.KafkaSource, caplog: pytest.LogCaptureFixture) -> None:
    first = source.consumer
    assert first.conf["group.protocol"] == "consumer"  # type: ignore[attr-defined]
    # what librdkafka 2.16 delivers from a broker without KIP-848 (seen against ops/' broker
    # started with group.coordinator.rebalance.protocols=classic; the message is in the text)
    refused = KafkaError(KafkaError._FATAL, "Fatal error: Broker: API version not supported: "
                         "ConsumerGroupHeartbeat fatal error: Broker: API version not supported", fatal=True)
    first.queue.append(FakeMsg(refused))  # type: ignore[attr-defined]
    with caplog.at_level("WARNING", logger="stream_ensemble.kafka"):
        assert source.poll_batch(100, 0.1) == []
    second = source.consumer
    assert second is not first and first.closed and second.conf["group.protocol"] == "classic"  # type: ignore[attr-defined]
    assert second.conf["session.timeout.ms"] == 6000  # type: ignore[attr-defined]
    assert [getattr(r, "event", None) for r in caplog.records] == ["group_protocol_fallback"]
    # a later fatal error replaces the consumer, still classic
    second.queue.append(FakeMsg(KafkaError(KafkaError._FATAL)))  # type: ignore[attr-defined]
    source.poll_batch(100, 0.1)
    assert source.consumer.conf["group.protocol"] == "classic" and source.replaced == 2  # type: ignore[attr-defined]


def test_async_commits_are_coalesced_and_nothing_acknowledged_is_dropped(
        source: kafka_adapter.KafkaSource, monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import TopicPartition

    c = source.consumer
    sent = lambda i: sorted((tp.partition, tp.offset) for tp in c.commits[i])  # noqa: E731
    source.commit([SourceRef("features", 0, 1)], asynchronous=True)  # the first one goes at once
    for off in range(2, 50):  # a batch every few ms: coalesced, not one request each
        source.commit([SourceRef("features", off % 3, off)], asynchronous=True)
    assert len(c.commits) == 1 and sent(0) == [(0, 2)]  # type: ignore[attr-defined]
    # a revocation sends the revoked partition's offsets before it is acknowledged
    source._on_revoke(c, [TopicPartition("features", 1)])  # type: ignore[arg-type]
    assert len(c.commits) == 2 and sent(1) == [(1, 50)]  # type: ignore[attr-defined]  # 49 = 1 mod 3
    # the poll loop sends the rest once the interval has passed (an idle stream too)
    monkeypatch.setattr(kafka_adapter, "COMMIT_INTERVAL_S", 0.0)
    assert source.poll_batch(10, 0.0) == []
    assert len(c.commits) == 3 and sent(2) == [(0, 49), (2, 48)]  # type: ignore[attr-defined]
    # a synchronous commit (shutdown) always goes, with whatever was coalesced
    monkeypatch.setattr(kafka_adapter, "COMMIT_INTERVAL_S", 60.0)
    source.commit([SourceRef("features", 0, 60)], asynchronous=True)
    source.commit([SourceRef("features", 2, 70)], asynchronous=False)
    assert len(c.commits) == 4 and sent(3) == [(0, 61), (2, 71)]  # type: ignore[attr-defined]
    # what is still coalesced at shutdown is committed before the consumer leaves the group
    source.commit([SourceRef("features", 1, 80)], asynchronous=True)
    source.close()
    assert len(c.commits) == 5 and sent(4) == [(1, 81)] and c.closed  # type: ignore[attr-defined]
