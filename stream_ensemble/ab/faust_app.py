"""``stream-ensemble ab evaluate``: the outcome join as a faust-streaming app on the project's broker.

Two agents:

1. ``route`` reads ``scores``, ``scores.shadow`` and ``outcomes`` (raw bytes), keeps what an
   experiment needs, sends a malformed outcome to ``outcomes.dlq`` (original bytes + reason)
   and re-keys the rest by ``event_id`` into the internal topic ``<app id>-joinable``, so a
   score and its outcome meet in one partition whatever key and partitioner their producers used.
2. ``join`` reads ``joinable`` in batches and updates the changelog-backed table ``join-state``.
   Its keys are ``<partition>:<bucket>`` (bucket = CRC-32 of event_id): one bucket holds an
   event's pending side, its joined marker and the sums it added, and is written as one record.
   Each record is sent into the Kafka producer before the batch's events are acked, and faust
   flushes the producer before it commits input offsets, so after a crash (even kill -9) the
   table is at least as new as the offsets; re-delivered inputs find their event already
   joined: each outcome is counted once.

Timers: each second every instance publishes the sums of the partitions it owns to Redis
(``se:abstats:<experiment>``); the leader looks at every running experiment (report,
guardrail, ramp, history; :mod:`.control`); every instance's partition watchdog
(:mod:`.watchdog`, ``--stall-s``) restarts an input partition that lags while nothing of it
is read.

Verified with faust-streaming 0.15 / aiokafka 0.14 against Kafka 4.0 (consumer group,
changelog and repartition topics); ``ops/README.md`` pins the versions.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

import faust
import orjson

from stream_ensemble.ab import control
from stream_ensemble.ab.recovery import SeekBeforeResumeTableManager, snapshot_fetch_partitions
from stream_ensemble.ab.watchdog import PartitionWatchdog
from stream_ensemble.adapters.ab_store import ABStore
from stream_ensemble.adapters.redis_store import connect
from stream_ensemble.config import Config
from stream_ensemble.core.experiments.join import (
    Bucket,
    apply_outcome,
    apply_score,
    bucket_of,
    expire,
    merge_stats,
    new_bucket,
    score_record,
)
from stream_ensemble.serving.codec import dlq_record
from stream_ensemble.types import DeadLetter, RawMessage, SourceRef

log = logging.getLogger("stream_ensemble.ab")
BUCKETS = 16
BATCH = 500


def check_outcome(doc: Any) -> tuple[str, int | str]:
    """(event_id, label) of an outcome event, or ValueError with the reason (schemas/outcome_event.json)."""
    if not isinstance(doc, dict):
        raise ValueError("outcome must be a JSON object")
    event_id, label, ts = doc.get("event_id"), doc.get("label"), doc.get("timestamp")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("outcome needs a non-empty string event_id")
    if isinstance(label, bool) or not isinstance(label, (int, str)) or label == "":
        raise ValueError("outcome label must be a class index (integer) or a class name (string)")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or ts < 0:
        raise ValueError("outcome timestamp must be a number >= 0")
    return event_id, label


def build_app(cfg: Config) -> faust.App:
    """The faust app (not started). Partitions of the internal topic and tables: ``kafka.partitions``."""
    ab, kafka = cfg.ab, cfg.kafka
    parts = kafka.partitions
    snapshot_fetch_partitions()  # no fetch reads an emptied active set as "all" (.recovery)
    app = faust.App(
        ab.app_id, broker=f"kafka://{kafka.bootstrap}", store="memory://", topic_partitions=parts,
        web_enabled=False, consumer_auto_offset_reset="earliest", broker_commit_interval=1.0,
        producer_acks=-1, topic_replication_factor=1, table_standby_replicas=0,
        # a killed instance's partitions move to the others after 10 s (faust's default is 60 s)
        broker_session_timeout=10.0, broker_heartbeat_interval=1.0,
        # seek the sources to their committed offsets before resuming them (.recovery)
        TableManager=SeekBeforeResumeTableManager,
    )  # fmt: skip
    sources = app.topic(kafka.scores_topic, ab.shadow_topic, ab.outcomes_topic,
                        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    joinable = app.topic(f"{ab.app_id}-joinable", partitions=parts, internal=True,
                         key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(ab.outcomes_dlq_topic, key_serializer="raw", value_serializer="raw")
    state = app.Table("join-state", default=None, partitions=parts)  # keys and values as JSON (faust default)
    store = ABStore(connect(cfg.redis), cfg.redis.key_prefix)

    @app.agent(sources)
    async def route(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            value: bytes = msg.value or b""
            bad = None
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                doc, bad = None, f"invalid JSON: {exc}"

            if msg.topic == ab.outcomes_topic:
                try:
                    if bad is not None:
                        raise ValueError(bad)
                    event_id, label = check_outcome(doc)
                except ValueError as exc:
                    dead = DeadLetter(RawMessage(value, msg.key, SourceRef(msg.topic, msg.partition, msg.offset)),
                                      str(exc), "invalid_json" if doc is None else "schema",
                                      doc.get("event_id") if isinstance(doc, dict) else None)
                    log.warning("outcome dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, exc)
                    await dlq.send(key=msg.key, value=dlq_record(dead))
                    continue
                await joinable.send(key=event_id.encode(), value=orjson.dumps({"o": label}), timestamp=msg.timestamp)
            elif isinstance(doc, dict):
                rec = score_record(doc, shadow=msg.topic == ab.shadow_topic)
                if rec is not None:
                    await joinable.send(key=str(doc["event_id"]).encode(), value=orjson.dumps({"s": rec}),
                                        timestamp=msg.timestamp)

    def _bucket(key: str) -> Bucket:
        got = state.data.get(key)
        return got if isinstance(got, dict) else new_bucket()

    async def _save(key: str, bucket: Bucket) -> None:
        state.data[key] = bucket
        # Awaited into the Kafka producer, not faust's ``send_changelog`` (``send_soon``: a
        # buffer drained by a background task). faust commits input offsets after
        # ``Producer.flush()``, whose buffer flush (faust-streaming 0.15.3) returns when no
        # buffered message is sent within 0.1 s, and does not see the one the task is sending:
        # the commit could pass a batch whose changelog records were still in that buffer, and a
        # kill -9 then lost them (README, Outcome join). Sent here, each record is in aiokafka's
        # accumulator before the batch's events are acked, and the commit's flush waits for it.
        table: Any = state  # faust's Table; its serializers and sent-callback are not on TableT
        await table.changelog_topic.send(key=key, value=bucket, partition=int(key.split(":", 1)[0]),
                                         key_serializer=table.key_serializer, value_serializer=table.value_serializer,
                                         callback=table._on_changelog_sent)

    stream_time: dict[int, float] = {}

    def _now(partition: int) -> float:
        # Event time: a partition's clock is the newest input timestamp it has seen, so a join
        # that was down (a restart, a rebalance) expires nothing for the time it was away. An
        # idle partition still expires, by the wall clock, once entries are 2 windows old.
        return max(stream_time.get(partition, 0.0), time.time() - ab.join_window_s)

    @app.agent(joinable)
    async def join(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=0.2):
            touched: dict[str, Bucket] = {}
            for event in events:
                event_id = (event.key or b"").decode()
                partition = event.message.partition
                ts = float(event.message.timestamp or time.time())
                key = f"{partition}:{bucket_of(event_id, BUCKETS)}"
                bucket = touched.get(key)
                if bucket is None:
                    bucket = touched[key] = _bucket(key)
                    stream_time[partition] = max(stream_time.get(partition, 0.0), float(bucket.get("st", 0.0)))
                stream_time[partition] = max(stream_time[partition], ts)
                item = orjson.loads(event.value)
                if "o" in item:
                    apply_outcome(bucket, event_id, item["o"], ts)
                else:
                    apply_score(bucket, event_id, item["s"], ts)
            for key, bucket in touched.items():
                partition = int(key.split(":", 1)[0])
                bucket["st"] = stream_time[partition]
                expire(bucket, _now(partition), ab.join_window_s)
                await _save(key, bucket)

    @app.timer(max(ab.join_window_s / 4, 0.5))  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        for key in list(state.data.keys()):
            bucket = _bucket(key)
            partition = int(str(key).split(":", 1)[0])
            stream_time[partition] = max(stream_time.get(partition, 0.0), float(bucket.get("st", 0.0)))
            before = (len(bucket["pending"]), len(bucket["done"]), len(bucket["expired"]))
            expire(bucket, _now(partition), ab.join_window_s)
            if (len(bucket["pending"]), len(bucket["done"]), len(bucket["expired"])) != before:
                await _save(key, bucket)

    @app.timer(ab.refresh_s)  # type: ignore[untyped-decorator]
    async def publish() -> None:
        by_partition: dict[int, list[Bucket]] = defaultdict(list)
        for key in list(state.data.keys()):
            by_partition[int(str(key).split(":", 1)[0])].append(_bucket(key))
        for partition, buckets in by_partition.items():
            merged = merge_stats(buckets)
            for exp_id, exp in merged["stats"].items():
                store.publish_partition(exp_id, partition, {"stats": {exp_id: exp}})
            store.publish_counts(ab.app_id, partition, merged["counts"])

    @app.timer(ab.refresh_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def guard() -> None:
        for ensemble in store.ensembles():
            try:
                control.look(store, ensemble, ab)
            except Exception as exc:  # one bad experiment hash must not stop the others
                log.warning("experiment %s: %s", ensemble, exc)

    if ab.stall_s > 0:
        # an input partition left unread after a restart (README, Outcome join) is found and
        # sought back to its committed offset within about stall_s (ab/watchdog.py)
        watchdog = PartitionWatchdog(app, ab.stall_s)

        @app.timer(min(max(ab.stall_s / 4, 0.25), 1.0))  # type: ignore[untyped-decorator]
        async def watch() -> None:
            await watchdog.check()

    return app


def run(cfg: Config, loglevel: str = "info") -> None:
    """Run the app until SIGTERM / SIGINT (faust's worker handles the signals)."""
    app = build_app(cfg)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
