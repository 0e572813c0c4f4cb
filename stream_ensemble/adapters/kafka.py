"""Thin confluent-kafka adapters: batch source with explicit commits, confirming sink.

Topic administration and the shared client settings live in :mod:`.kafka_admin`, the
confirming sink (delivery tracked per batch) in :mod:`.kafka_sink`; they are re-exported here
so callers import every Kafka adapter from one place.

At-least-once: auto-commit and auto offset store are off; the worker commits a batch's
offsets only after :meth:`KafkaSink.flush_and_confirm` saw every output acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stream_ensemble.adapters.kafka_admin import (
    admin_client,
    client_conf,
    ensure_topics,
    raise_partitions,
    topic_partitions,
)
from stream_ensemble.adapters.kafka_sink import MESSAGE_MAX_BYTES, PERMANENT_ERRORS, KafkaSink
from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.types import RawMessage, SourceRef

__all__ = [
    "MESSAGE_MAX_BYTES", "PERMANENT_ERRORS", "KafkaSink", "KafkaSource", "admin_client", "client_conf", "ensure_topics", "raise_partitions",
    "topic_partitions",
]

log = logging.getLogger("stream_ensemble.kafka")
# librdkafka's own log lines go through these Python loggers (confluent-kafka's ``logger``
# setting), so they follow --log-format json instead of being printed raw on stderr.
CONSUMER_LOG = logging.getLogger("librdkafka.consumer")
#: Shortest gap between two asynchronous offset commits (the offsets in between are coalesced):
#: a crash re-reads at most this much more, and the group coordinator's connection stays free
#: for heartbeats.
COMMIT_INTERVAL_S = 0.2


def group_conf(cfg: KafkaConfig) -> dict[str, Any]:
    """The consumer's group-protocol settings.

    ``consumer`` (KIP-848): assignment and session are the broker's (librdkafka refuses
    ``session.timeout.ms``, ``heartbeat.interval.ms`` and ``partition.assignment.strategy``
    with it); the member id survives a broker outage and rebalances are incremental.
    ``classic``: cooperative-sticky, the session timeout of ``cfg`` (heartbeats every 1 s or
    a third of it).

    Examples
    --------
    >>> sorted(group_conf(KafkaConfig(group_protocol="consumer")))
    ['group.protocol']
    >>> group_conf(KafkaConfig(group_protocol="classic", session_timeout_s=6.0))["heartbeat.interval.ms"]
    1000
    """
    if cfg.group_protocol == "consumer":
        return {"group.protocol": "consumer"}
    return {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": int(cfg.session_timeout_s * 1000),
        "heartbeat.interval.ms": min(1000, int(cfg.session_timeout_s * 1000 / 3)),
    }


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
        self._cfg = cfg
        self._conf = {
            **client_conf(cfg),
            "group.id": cfg.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **group_conf(cfg),
            "max.poll.interval.ms": 300000,
            "fetch.wait.max.ms": 50,
            # after a broker outage, reconnect within 1 s (librdkafka's default backoff grows to 10 s)
            "reconnect.backoff.max.ms": 1000,
            "on_commit": self._on_commit,
            **(extra or {}),
        }
        self.commit_errors = 0
        self._commits_failing = 0  # failures since the last success: logged once per state change
        self.commits_skipped = 0
        self.commits_sent = 0
        self.replaced = 0
        # Asynchronous commits are coalesced (see commit): highest offset+1 per partition not yet sent.
        self._pending: dict[tuple[str, int], int] = {}
        self._last_commit = 0.0
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
        from there (what was read since comes again: duplicates, never a gap). A broker that
        refuses the consumer group protocol (before Kafka 4.0, or with it disabled: librdkafka's
        fatal ``ConsumerGroupHeartbeat`` error) gets a classic-protocol consumer instead,
        logged once (event ``group_protocol_fallback``), never a loop of replacements.
        """
        self.replaced += 1
        if self._conf.get("group.protocol") == "consumer" and "ConsumerGroupHeartbeat" in str(err):
            self._conf = {**self._conf, **group_conf(replace(self._cfg, group_protocol="classic"))}
            log.warning("the broker does not support the consumer group protocol (KIP-848, Kafka >= 4.0): "
                        "the worker falls back to the classic protocol (session timeout %.1f s; set "
                        "--group-protocol classic to skip this): %s", self._cfg.session_timeout_s, err,
                        extra={"event": "group_protocol_fallback", "reason": str(err)})
        else:
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
        # Offsets of acknowledged batches not yet sent go now, while this member still owns the
        # partitions (one request, ahead of the heartbeat that acknowledges the revocation);
        # a batch still in flight is re-read by the next owner (duplicates, never a gap).
        names = [f"{p.topic}[{p.partition}]" for p in partitions]
        log.info("revoked %s", names, extra={"event": "assignment", "revoked": names})
        gone = {(p.topic, p.partition) for p in partitions}
        mine = {k: v for k, v in self._pending.items() if k in gone}
        self._pending = {k: v for k, v in self._pending.items() if k not in gone}
        if mine:
            self._send_commit(mine, asynchronous=True)
        if self._on_assignment is not None:
            self._on_assignment([], [(p.topic, p.partition) for p in partitions])

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        """Up to ``max_messages`` messages; transient errors are logged.

        A fatal consumer error replaces the consumer (event ``consumer_replaced``) and this
        poll returns nothing.
        """
        out: list[RawMessage] = []
        self.flush_commits()
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

        Asynchronous commits are coalesced: at most one request per ``COMMIT_INTERVAL_S``,
        carrying the highest offset per partition seen since the last one (sent by a later
        ``commit`` or ``poll_batch``, before a revocation, or with the next synchronous commit).
        A commit request per small batch (~100/s at 300 events/s) queued on the coordinator's
        connection ahead of the heartbeat that acknowledges a revocation and held a partition
        unowned for 14.6 s after a kill -9 (``bench faults`` kill9_x3, README Faults).

        Parameters
        ----------
        refs : sequence of SourceRef
        asynchronous : bool, default=False
            Return at once; the result arrives in a callback that logs and counts failures
            (``commit_errors``). Safe for at-least-once because the caller commits only
            offsets whose outputs were acknowledged; a lost or later async commit means
            re-delivery, never a gap.

        Raises
        ------
        KafkaAdapterError
            A synchronous commit failed (e.g. the partition was revoked); the batch will be re-read.
        """
        pending = self._pending
        for r in refs:
            k = (r.topic, r.partition)
            if r.offset + 1 > pending.get(k, -1):
                pending[k] = r.offset + 1
        if not pending:
            return
        if asynchronous and time.monotonic() - self._last_commit < COMMIT_INTERVAL_S:
            return
        self._pending = {}
        self._send_commit(pending, asynchronous)

    def flush_commits(self) -> None:
        """Send the coalesced offsets once ``COMMIT_INTERVAL_S`` has passed (idle streams too)."""
        if self._pending and time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
            pending, self._pending = self._pending, {}
            self._send_commit(pending, asynchronous=True)

    def _send_commit(self, top: dict[tuple[str, int], int], asynchronous: bool) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in top.items()]
        self._last_commit = time.monotonic()
        if not self.consumer.memberid():
            # Not in the group now (its session timed out during a broker outage): the commit
            # would be refused (UNKNOWN_MEMBER_ID). Skipped: the batch is read again after the
            # re-join (duplicates, never a loss).
            self.commits_skipped += 1
            log.info("offset commit skipped: not a member of the group now; %d partitions will be re-read from "
                     "their last commit", len(offsets), extra={"event": "commit_skipped", "partitions": len(offsets)})
            return
        self.commits_sent += 1
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
            self._commits_failing += 1
            if self._commits_failing == 1:  # one line per state change, not one per batch of an outage
                log.warning("asynchronous offset commit failed, events will be re-delivered: %s", err,
                            extra={"event": "commit", "state": "failing", "reason": str(err)})
        elif err is None and self._commits_failing:
            log.info("offset commits succeed again after %d failed", self._commits_failing,
                     extra={"event": "commit", "state": "ok", "failed": self._commits_failing})
            self._commits_failing = 0

    def close(self) -> None:
        """Send the coalesced offsets (all of acknowledged batches), then leave the group
        cleanly (triggers a rebalance for the others)."""
        if self._pending:
            pending, self._pending = self._pending, {}
            try:
                self._send_commit(pending, asynchronous=False)
            except KafkaAdapterError as exc:  # re-read by the next owner: duplicates, never a gap
                log.warning("final offset commit failed, events will be re-delivered: %s", exc)
        self.consumer.close()
