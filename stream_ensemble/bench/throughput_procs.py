"""The processes ``bench throughput`` runs beside ``stream-ensemble serve``: the baselines and the
paced producer. Each is started as ``python -m stream_ensemble.bench.throughput_procs KIND ARGS``.

- ``passthrough``: consume a batch, decode every event, encode an output of the same size as
  a real scored event, produce, wait for the acks, commit -- the broker's ceiling for a Python
  worker with the same delivery guarantee;
- ``naive``: what a user writes without this project: per event, ``json.loads``, one encoded
  row, each selected member's ``predict_proba`` on that row, their mean, ``json.dumps``, produce;
- ``produce``: a separate producer process offering events at a fixed rate, each event's
  ``timestamp`` set at the moment it is handed to the producer (latency = arrival - timestamp).

Each worker logs ``assigned [...]`` / ``revoked [...]`` lines like ``serve`` does, so the bench
knows when the group is stable, and stops on SIGTERM after committing what it acknowledged.
"""

from __future__ import annotations

import base64
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

_stop = False


def distinct_record(records: list[dict[str, Any]], i: int) -> dict[str, Any]:
    """Event ``i``'s features: real row ``i mod len(records)``, numbers scaled by 1 + c * 1e-9 on
    its c-th repeat, so every event is a distinct feature vector (no cache hit from replaying
    the rows) while the models see the real rows."""
    rec = records[i % len(records)]
    c = i // len(records)
    if c == 0:
        return rec
    f = 1.0 + c * 1e-9
    return {k: v * f if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in rec.items()}


def _on_term(*_: object) -> None:
    global _stop
    _stop = True


def _consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    def on_assign(_c: Any, parts: list[TopicPartition]) -> None:
        print(f"assigned {[f'{p.topic}[{p.partition}]' for p in parts]}", flush=True)

    def on_revoke(_c: Any, parts: list[TopicPartition]) -> None:
        print(f"revoked {[f'{p.topic}[{p.partition}]' for p in parts]}", flush=True)

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                  "partition.assignment.strategy": "cooperative-sticky", "fetch.wait.max.ms": 50})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    return c


def _producer(bootstrap: str, linger_ms: int = 5) -> Producer:
    # The worker's own producer settings (adapters/kafka_sink.py KafkaSink), so the baselines pay
    # the same delivery guarantee.
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "linger.ms": linger_ms, "compression.type": "lz4"})


def _loop(args: dict[str, Any], transform: Any) -> None:
    """Consume batches, ``transform(value) -> (key, out_bytes)`` per event, produce, ack, commit."""
    signal.signal(signal.SIGTERM, _on_term)
    c = _consumer(args["bootstrap"], args["group"], args["features_topic"])
    p = _producer(args["bootstrap"])
    out_topic, batch = args["scores_topic"], int(args["batch_size"])
    try:
        while not _stop:
            got = c.consume(num_messages=1, timeout=0.05)
            if got:
                got += c.consume(num_messages=batch - 1, timeout=0)
            msgs = [m for m in got if m.error() is None]
            if not msgs:
                continue
            for m in msgs:
                key, out = transform(m.value())
                while True:
                    try:
                        p.produce(out_topic, value=out, key=key)
                        break
                    except BufferError:
                        p.poll(0.05)
            if p.flush(30):
                raise SystemExit("outputs not acknowledged; nothing committed")
            c.commit(offsets=_next_offsets(msgs), asynchronous=True)
    finally:
        c.close()


def _next_offsets(msgs: list[Any]) -> list[TopicPartition]:
    top: dict[tuple[str, int], int] = {}
    for m in msgs:
        k = (m.topic(), m.partition())
        top[k] = max(top.get(k, -1), m.offset())
    return [TopicPartition(t, q, o + 1) for (t, q), o in top.items()]


def passthrough(args: dict[str, Any]) -> None:
    """Decode, encode an output padded to ``args["out_bytes"]``, produce, ack, commit."""
    want = int(args["out_bytes"])

    def transform(value: bytes) -> tuple[bytes, bytes]:
        doc = orjson.loads(value)
        head = {"event_id": doc["event_id"], "entity_id": doc["entity_id"], "timestamp": doc["timestamp"]}
        base = len(orjson.dumps(head)) + len(',"pad":""')
        out = orjson.dumps({**head, "pad": "x" * max(want - base, 0)})
        return doc["entity_id"].encode(), out

    _loop(args, transform)


def naive(args: dict[str, Any]) -> None:
    """Per event: json, one encoded row, each selected member's ``predict_proba``, mean, json."""
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.serving.loading import load_serving_ensemble

    ens = load_serving_ensemble(Registry(Path(args["registry"])), "default")
    from stream_ensemble.core.members.flat_forest import FlatForest

    chosen = [ens.pool.members[j] for j in np.flatnonzero(ens.strategy.required_members(np.ones(len(ens.pool), bool)))]
    # the plain scikit-learn estimators, as a user without this project would call them
    members = [(m.tag, m.estimator.forest if isinstance(m.estimator, FlatForest) else m.estimator) for m in chosen]

    def transform(value: bytes) -> tuple[bytes, bytes]:
        doc = json.loads(value)
        x = ens.encoder.transform_records([doc["features"]]).X
        probas = {tag: float(est.predict_proba(x)[0, 1]) for tag, est in members}
        out = {"event_id": doc["event_id"], "entity_id": doc["entity_id"], "timestamp": doc["timestamp"],
               "probability": sum(probas.values()) / len(probas), "model_probabilities": probas}
        return doc["entity_id"].encode(), json.dumps(out).encode()

    _loop(args, transform)


def produce(args: dict[str, Any]) -> None:
    """Offer ``events`` events at ``rate``/s from the records file, then print a JSON summary.

    Optional arguments (``bench faults``): ``partitions`` sends event ``i`` to partition
    ``i mod partitions`` and keys every message by its event_id (so a dead letter names its
    event even when the value is unreadable); ``poison`` is a JSON file of ``[event_id,
    base64 value]`` pairs, one sent after every ``poison_every`` good events;
    ``message_timeout_ms`` bounds how long a message may wait for a broker that is down.
    The summary lists up to 10,000 ``failed_ids`` (never acknowledged, so never produced).
    """
    records = orjson.loads(Path(args["records"]).read_bytes())
    n, rate, topic, run = int(args["events"]), float(args["rate"]), args["features_topic"], args["run_id"]
    parts = int(args.get("partitions", 0))
    poison = [(eid, base64.b64decode(v)) for eid, v in orjson.loads(Path(args["poison"]).read_bytes())] \
        if args.get("poison") else []
    every = max(int(args.get("poison_every", 10)), 1)
    p = Producer({"bootstrap.servers": args["bootstrap"], "acks": "all", "enable.idempotence": True,
                  "linger.ms": 1, "compression.type": "lz4", "message.max.bytes": 2_000_000,
                  "message.timeout.ms": int(args.get("message_timeout_ms", 300_000))})
    failures = 0
    failed_ids: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal failures
        if err is not None:
            failures += 1
            if len(failed_ids) < 10_000:
                failed_ids.append((msg.key() or b"").decode(errors="replace"))

    def send(key: str, value: bytes, partition: int) -> None:
        while True:
            try:
                if parts:
                    p.produce(topic, key=key.encode(), value=value, partition=partition, on_delivery=on_delivery)
                else:
                    p.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
                return
            except BufferError:
                p.poll(0.05)

    t0 = time.perf_counter()
    i = sent_poison = 0
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            entity = f"e-{i % 997}"
            eid = f"{run}-{i}"
            doc = {"event_id": eid, "entity_id": entity, "timestamp": time.time(), "features": distinct_record(records, i)}
            send(eid if parts else entity, orjson.dumps(doc), i % parts if parts else 0)
            i += 1
            if poison and i % every == 0 and sent_poison < len(poison):
                eid, value = poison[sent_poison]
                send(eid, value, sent_poison % parts if parts else 0)
                sent_poison += 1
        p.poll(0)
        time.sleep(0.001)
    left = p.flush(float(args.get("message_timeout_ms", 30_000)) / 1000.0 + 5.0)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"produced": n + sent_poison, "good": n, "poison": sent_poison, "seconds": elapsed,
                      "offered_per_s": n / elapsed, "unacknowledged": left, "failures": failures,
                      "failed_ids": failed_ids}), flush=True)


def main(argv: list[str]) -> None:
    """``KIND JSON_ARGS``."""
    kind, args = argv[0], json.loads(argv[1])
    {"passthrough": passthrough, "naive": naive, "produce": produce}[kind](args)


if __name__ == "__main__":
    main(sys.argv[1:])
