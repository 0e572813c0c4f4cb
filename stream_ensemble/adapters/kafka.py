"""Thin confluent-kafka adapters: batch source with explicit commits, topics (the confirming
sink is :mod:`stream_ensemble.adapters.kafka_sink`).

At-least-once: auto-commit and auto offset store are off; the worker commits a batch's
offsets only after :meth:`~stream_ensemble.adapters.kafka_sink.KafkaSink.flush_and_confirm`
saw every output of that batch acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # type: ignore[attr-defined]

from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.types import RawMessage, SourceRef

log = logging.getLogger("stream_ensemble.kafka")
# librdkafka's own log lines go through these Python loggers (confluent-kafka's ``logger``
# setting), so they follow --log-format json instead of being printed raw on stderr.
CONSUMER_LOG = logging.getLogger("librdkafka.consumer")
ADMIN_LOG = logging.getLogger("librdkafka.admin")

_SECURITY_KEYS = (
    ("security_protocol", "security.protocol"), ("sasl_mechanism", "sasl.mechanism"),
    ("sasl_username", "sasl.username"), ("sasl_password", "sasl.password"),
    ("ssl_ca_location", "ssl.ca.location"), ("ssl_certificate_location", "ssl.certificate.location"),
    ("ssl_key_location", "ssl.key.location"), ("ssl_key_password", "ssl.key.password"),
)


def client_conf(cfg: KafkaConfig | str) -> dict[str, Any]:
    """librdkafka settings every client of ``cfg`` needs: bootstrap servers and security.

    Use it for every Consumer, Producer and AdminClient so that ``security.protocol``, SASL
    and TLS apply everywhere. A bare bootstrap string means PLAINTEXT.
    """
    if isinstance(cfg, str):
        return {"bootstrap.servers": cfg}
    conf: dict[str, Any] = {"bootstrap.servers": cfg.bootstrap}
    if cfg.security_protocol != "PLAINTEXT":
        conf["security.protocol"] = cfg.security_protocol
        for name, key in _SECURITY_KEYS[1:]:
            value = getattr(cfg, name)
            if value and (key.startswith("ssl.") or cfg.security_protocol.startswith("SASL_")):
                conf[key] = value
    return conf


def admin_client(cfg: KafkaConfig | str) -> AdminClient:
    """An AdminClient whose librdkafka logs go to the ``librdkafka.admin`` logger.

    The admin client forwards its logs only when polled: call ``poll(0)`` after each request.
    """
    return AdminClient(client_conf(cfg), logger=ADMIN_LOG)


class KafkaSource:
    """Consumes ``topic`` in batches as a member of ``cfg.group_id``.

    Parameters
    ----------
    cfg : KafkaConfig
    topic : str, optional
        Defaults to ``cfg.features_topic``.
    extra : dict, optional
        More librdkafka settings (they win over the defaults).
    """

    def __init__(self, cfg: KafkaConfig, topic: str | None = None, extra: dict[str, Any] | None = None,
                 on_assignment: Callable[[list[tuple[str, int]], list[tuple[str, int]]], None] | None = None) -> None:
        self._on_assignment = on_assignment
        self._conf = {
            **client_conf(cfg),
            "group.id": cfg.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": int(cfg.session_timeout_s * 1000),
            "heartbeat.interval.ms": min(1000, int(cfg.session_timeout_s * 1000 / 3)),
            "max.poll.interval.ms": 300000,
            "fetch.wait.max.ms": 50,
            # after a broker outage, reconnect within 1 s (librdkafka's default backoff grows to 10 s)
            "reconnect.backoff.max.ms": 1000,
            "on_commit": self._on_commit,
            **(extra or {}),
        }
        self.commit_errors = 0
        self.commits_skipped = 0
        self.replaced = 0
        self.topic = topic or cfg.features_topic
        self.consumer = self._consumer()

    def _consumer(self) -> Consumer:
        # Dynamic membership. Static membership (group.instance.id) would spare the re-join
        # after a broker outage its wait for the old member to expire, but librdkafka 2.16
        # fenced its own consumer after the local session timeout (FENCED_INSTANCE_ID, fatal).
        conf = dict(self._conf)
        try:
            consumer = Consumer(conf, logger=CONSUMER_LOG)
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot create Kafka consumer: {exc}") from exc
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        return consumer

    def _replace(self, err: KafkaError) -> None:
        """A fatal consumer error (e.g. fenced): a new consumer joins the group in its place.

        Nothing is lost: the old one committed only acknowledged batches, the new one reads
        from there (what was read since comes again: duplicates, never a gap).
        """
        self.replaced += 1
        log.warning("fatal consumer error, replacing the consumer: %s", err,
                    extra={"event": "consumer_replaced", "reason": str(err)})
        old, self.consumer = self.consumer, self._consumer()
        try:
            old.close()
        except (KafkaException, RuntimeError):
            pass

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        names = [f"{p.topic}[{p.partition}]" for p in partitions]
        log.info("assigned %s", names, extra={"event": "assignment", "assigned": names})
        if self._on_assignment is not None:
            self._on_assignment([(p.topic, p.partition) for p in partitions], [])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is in flight here: the worker commits each batch before polling again.
        names = [f"{p.topic}[{p.partition}]" for p in partitions]
        log.info("revoked %s", names, extra={"event": "assignment", "revoked": names})
        if self._on_assignment is not None:
            self._on_assignment([], [(p.topic, p.partition) for p in partitions])

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        """Up to ``max_messages`` messages; transient errors are logged.

        A fatal consumer error replaces the consumer (event ``consumer_replaced``) and this
        poll returns nothing.
        """
        out: list[RawMessage] = []
        # Wait at most timeout_s for the first message, then take what is already fetched:
        # consume(n, timeout) alone waits the whole timeout unless n messages arrive.
        got = self.consumer.consume(num_messages=1, timeout=timeout_s)
        if got and max_messages > 1:
            got += self.consumer.consume(num_messages=max_messages - 1, timeout=0)
        for msg in got:
            err = msg.error()
            if err is not None:
                if err.fatal() or err.code() == KafkaError._FATAL:
                    # a fatal error stops the consumer for good (it would poll nothing, forever)
                    self._replace(err)
                    return []
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            ts_type, ts = msg.timestamp()
            out.append(
                RawMessage(
                    value=msg.value(),
                    key=msg.key(),
                    # topic/partition/offset are only None on error events, skipped above
                    ref=SourceRef(msg.topic() or "", msg.partition() or 0, msg.offset() or 0),
                    produce_time_ms=ts if ts_type != 0 else None,
                )
            )
        return out

    def commit(self, refs: Sequence[SourceRef], asynchronous: bool = False) -> None:
        """Commit offset+1 of the highest ref per partition.

        Parameters
        ----------
        refs : sequence of SourceRef
        asynchronous : bool, default=False
            Return at once; the result arrives in a callback that logs and counts failures
            (``commit_errors``). Safe for at-least-once because the caller commits only
            offsets whose outputs were acknowledged; a lost async commit means re-delivery.

        Raises
        ------
        KafkaAdapterError
            A synchronous commit failed (e.g. the partition was revoked); the batch will be re-read.
        """
        if not refs:
            return
        top: dict[tuple[str, int], int] = {}
        for r in refs:
            k = (r.topic, r.partition)
            top[k] = max(top.get(k, -1), r.offset)
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in top.items()]
        if not self.consumer.memberid():
            # Not in the group now (its session timed out during a broker outage): the commit
            # would be refused (UNKNOWN_MEMBER_ID). Skipped: the batch is read again after the
            # re-join (duplicates, never a loss).
            self.commits_skipped += 1
            log.info("offset commit skipped: not a member of the group now; %d partitions will be re-read from "
                     "their last commit", len(offsets), extra={"event": "commit_skipped", "partitions": len(offsets)})
            return
        try:
            if asynchronous:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise KafkaAdapterError(f"offset commit failed: {exc}") from exc

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            self.commit_errors += 1
            log.warning("asynchronous offset commit failed, events will be re-delivered: %s", err)

    def close(self) -> None:
        """Leave the group cleanly (triggers a rebalance for the others)."""
        self.consumer.close()


def ensure_topics(kafka: KafkaConfig | str, topics: Iterable[tuple[str, int]], timeout_s: float = 30.0) -> None:
    """Create topics that do not exist yet (``(name, partitions)``); existing ones are kept.

    ``kafka`` is the connection (a :class:`KafkaConfig`, or a bare bootstrap string for PLAINTEXT).

    Raises
    ------
    KafkaAdapterError
        The broker is unreachable or refused to create a topic.
    """
    bootstrap = kafka if isinstance(kafka, str) else kafka.bootstrap
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise KafkaAdapterError(f"Kafka at {bootstrap} is not reachable: {exc}") from exc
    finally:
        admin.poll(0)
    # replication_factor -1: the broker's default.replication.factor (1 on the single dev node,
    # 3 on ops/kafka-cluster.sh), so a topic survives a broker where the cluster can afford it
    new = [NewTopic(name, num_partitions=parts, replication_factor=-1) for name, parts in topics if name not in existing]
    if not new:
        return
    for name, fut in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaAdapterError(f"cannot create topic {name}: {exc}") from exc
    # Metadata propagates asynchronously; wait until every topic is visible.
    deadline = time.monotonic() + timeout_s
    wanted = {t.topic for t in new}
    while time.monotonic() < deadline:
        if wanted <= set(admin.list_topics(timeout=timeout_s).topics):
            return
        time.sleep(0.1)
    raise KafkaAdapterError(f"topics {sorted(wanted)} not visible after {timeout_s}s")


def topic_partitions(kafka: KafkaConfig | str, names: Iterable[str], timeout_s: float = 30.0) -> dict[str, int]:
    """Partition count of each existing topic among ``names`` (missing topics are left out).

    Raises
    ------
    KafkaAdapterError
        The broker is unreachable.
    """
    admin = admin_client(kafka)
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise KafkaAdapterError(f"cannot read topic metadata: {exc}") from exc
    finally:
        admin.poll(0)
    return {n: len(topics[n].partitions) for n in names if n in topics}


def raise_partitions(kafka: KafkaConfig | str, counts: dict[str, int], timeout_s: float = 30.0) -> dict[str, int]:
    """Raise each topic of ``counts`` to that many partitions where it has fewer.

    Kafka can only add partitions (and adding them moves keys to other partitions for new
    events). Returns the topics changed with their new counts.

    Raises
    ------
    KafkaAdapterError
        The broker refused.
    """
    current = topic_partitions(kafka, counts, timeout_s)
    todo = [NewPartitions(t, n) for t, n in counts.items() if t in current and current[t] < n]
    if not todo:
        return {}
    admin = admin_client(kafka)
    for topic, fut in admin.create_partitions(todo, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot raise partitions of {topic}: {exc}") from exc
    admin.poll(0)
    return {p.topic: p.new_total_count for p in todo}
