"""``stream-ensemble demo``: the whole product, end to end, on the real broker and Redis.

Train (unless the registry already has an ensemble), start an experiment (a challenger at 20%,
:mod:`.experiment`) and its faust outcome join, start a worker process, publish feature events
made from the ensemble's held-out rows plus a handful of malformed ones, read ``scores`` and
``features.dlq`` until every event is accounted for, publish the held-out labels as outcomes,
wait for the join, stop the worker with SIGTERM, and summarise with the experiment's table.
``lost`` counts events that are neither scored nor dead-lettered.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from stream_ensemble.adapters.kafka import client_conf, ensure_topics
from stream_ensemble.config import KafkaConfig, RedisConfig
from stream_ensemble.core.data import load_bundled
from stream_ensemble.core.registry import Registry
from stream_ensemble.core.training import holdout_rows
from stream_ensemble.errors import ConfigError, KafkaAdapterError
from stream_ensemble.progress import progress as progress_bar

FEATURES, SCORES, DLQ = "features", "scores", "features.dlq"


@dataclass
class DemoRun:
    """What was produced: ids and labels of valid events, markers of malformed ones."""

    run_id: str
    labels: dict[str, int] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    produced_at: float = 0.0

    @property
    def produced_valid(self) -> int:
        """Number of valid events produced."""
        return len(self.labels)


def _malformed(run_id: str, record: dict[str, Any], n: int) -> list[tuple[str, bytes]]:
    """``n`` bad events cycling through every kind the worker must dead-letter.

    Each carries a marker (run id + index) so the demo can find it in the DLQ's original bytes.
    """
    first = next(iter(record))
    kinds = [
        lambda m: f'{{"event_id": "{m}", "features": {{broken'.encode(),  # not JSON
        lambda m: orjson.dumps({"marker": m, "entity_id": "e", "timestamp": 1, "features": record}),  # no event_id
        lambda m: orjson.dumps({"event_id": m, "entity_id": "e", "timestamp": 1, "features": [1, 2]}),
        lambda m: orjson.dumps({"event_id": m, "entity_id": "e", "timestamp": "yesterday", "features": record}),
        lambda m: orjson.dumps({"event_id": m, "entity_id": "e", "timestamp": 1, "features": {**record, first: "n/a"}}),
        lambda m: orjson.dumps([m, "an array, not an object"]),
    ]
    return [(f"{run_id}-bad-{i}", kinds[i % len(kinds)](f"{run_id}-bad-{i}")) for i in range(n)]


def produce_events(bootstrap: str, registry: Path, n_events: int, n_malformed: int,
                   features_topic: str = FEATURES, kafka: KafkaConfig | None = None,
                   run_id: str | None = None) -> DemoRun:
    """Publish ``n_events`` valid events (held-out rows, cycled) and ``n_malformed`` bad ones.

    Raises
    ------
    KafkaAdapterError
        A message was not acknowledged.
    """
    reg = Registry(registry)
    manifest = reg.manifest("ensembles", "default")
    if manifest.get("dataset") != "breast_cancer":
        raise ConfigError("the demo replays the bundled dataset; train the default ensemble on it first")
    data = load_bundled()
    rows = holdout_rows(reg)
    records = data.records(rows)
    run = DemoRun(run_id or uuid.uuid4().hex[:10])
    producer = Producer({**client_conf(kafka or bootstrap), "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    run.produced_at = time.time()
    for i in range(n_events):
        k = i % len(rows)
        event_id = f"{run.run_id}-{i}"
        # One entity per replay of a row (a patient's visit): the experiment assigns arms by
        # entity, so with one entity per row each arm would see a fixed fifth of the 113 rows
        # again and again, and compare the rows, not the ensembles.
        entity = f"patient-{int(rows[k])}-visit-{i // len(rows)}"
        doc = {"event_id": event_id, "entity_id": entity, "timestamp": time.time(), "features": records[k]}
        producer.produce(features_topic, key=entity.encode(), value=orjson.dumps(doc), on_delivery=on_delivery)
        run.labels[event_id] = int(data.y[rows[k]])
        run.rows.append(int(rows[k]))
        if i % 1000 == 999:
            producer.poll(0)
    for marker, value in _malformed(run.run_id, records[0], n_malformed):
        producer.produce(features_topic, key=b"malformed", value=value, on_delivery=on_delivery)
        run.malformed.append(marker)
    left = producer.flush(30)
    if left or failures:
        raise KafkaAdapterError(f"demo producer: {left} unacknowledged, failures: {failures[:3]}")
    return run


def _end_offsets(kafka: KafkaConfig, topic: str, timeout_s: float = 30.0) -> list[TopicPartition]:
    """Current end offset of every partition of ``topic``.

    Retries while a just-created topic has no leader yet (NOT_LEADER_FOR_PARTITION).
    """
    c = Consumer({**client_conf(kafka), "group.id": f"demo-probe-{uuid.uuid4().hex[:6]}"})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                md = c.list_topics(topic, timeout=10).topics[topic]
                return [
                    TopicPartition(topic, p, c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                    for p in md.partitions
                ]
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise KafkaAdapterError(f"cannot read end offsets of {topic}: {exc}") from exc
                time.sleep(0.5)
    finally:
        c.close()


def _collect(kafka: KafkaConfig, start: list[TopicPartition], run: DemoRun, timeout_s: float,
             alive: Callable[[], bool], scores_topic: str = SCORES) -> tuple[dict[str, dict[str, Any]], set[str], float]:
    """Read scores and DLQ from ``start`` until every event of ``run`` is accounted for.

    Stops early when ``alive()`` turns False (the worker died) and nothing more arrives.
    """
    c = Consumer({**client_conf(kafka), "group.id": f"demo-reader-{run.run_id}", "enable.auto.commit": False})
    c.assign(start)
    scored: dict[str, dict[str, Any]] = {}
    dead: set[str] = set()
    wanted_bad = set(run.malformed)
    last_arrival = 0.0
    deadline = time.monotonic() + timeout_s
    bar = progress_bar(run.produced_valid + len(wanted_bad), "collect", unit="event")
    try:
        while time.monotonic() < deadline:
            bar.update(len(scored) + len(dead) - bar.n)
            if len(scored) >= run.produced_valid and dead >= wanted_bad:
                break
            batch = c.consume(num_messages=500, timeout=0.1)
            if not batch and not alive():
                break
            for msg in batch:
                if msg.error():
                    continue
                doc = orjson.loads(msg.value() or b"{}")
                if msg.topic() == scores_topic:
                    eid = doc.get("event_id", "")
                    if eid in run.labels and eid not in scored:
                        # Broker-side append time of the score (the worker's producer stamps
                        # CreateTime): not delayed by this reader's own polling.
                        doc["_arrived"] = msg.timestamp()[1] / 1000.0
                        scored[eid] = doc
                        last_arrival = max(last_arrival, doc["_arrived"])
                else:
                    original = base64.b64decode(doc["original"]).decode("utf-8", "replace")
                    for marker in wanted_bad - dead:
                        if marker in original:
                            dead.add(marker)
                            break
    finally:
        bar.close()
        c.close()
    return scored, dead, last_arrival


def run_demo(bootstrap: str, redis_url: str, registry: Path, n_events: int, n_malformed: int,
             timeout_s: float, retrain: bool, kafka: KafkaConfig | None = None) -> dict[str, Any]:
    """Run the demo; returns the summary dict (printed as the last stdout line).

    ``kafka`` supplies the topics, consumer group and partition count (default: the defaults).
    """
    kafka = kafka or KafkaConfig(bootstrap=bootstrap)
    features, scores, dlq, parts = kafka.features_topic, kafka.scores_topic, kafka.dlq_topic, kafka.partitions
    echo = click.echo
    reg = Registry(registry)
    if retrain or not reg.versions("ensembles", "default"):
        echo("== training the pool on the bundled breast-cancer dataset")
        _run([sys.executable, "-m", "stream_ensemble", "train", "--registry", str(registry)])
    manifest = reg.manifest("ensembles", "default")
    echo(f"== ensemble default@v{manifest['version']}: strategy {manifest['strategy']}, members {', '.join(manifest['members'])}")
    from stream_ensemble.demo.experiment import DemoExperiment, ensure_challenger

    challenger = ensure_challenger(registry, echo)
    ensure_topics(kafka, [(features, parts), (scores, parts), (dlq, 1), ("outcomes", parts)])
    cleared = _clear_cache(redis_url, f"default@v{manifest['version']}") + _clear_cache(redis_url, challenger)
    echo(f"== cleared {cleared} cached scores of this ensemble, so every distinct row is scored once")
    start = _end_offsets(kafka, scores) + _end_offsets(kafka, dlq)
    log_path = registry.parent / "demo-worker.log"
    redis_cfg = RedisConfig(url=redis_url)
    deployed = _deployed(redis_cfg)
    champion = deployed or f"default@v{manifest['version']}"
    run_id = uuid.uuid4().hex[:10]
    experiment = DemoExperiment.start(kafka, redis_cfg, champion, challenger, run_id, registry.parent / "demo-ab.log")
    echo(f"== experiment {experiment.spec.experiment}: {challenger} at 20% against {champion} "
         f"(se:ab:default; outcome join: stream-ensemble ab evaluate, logs {experiment.log_path})")
    echo(f"== starting a worker (logs: {log_path})")
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stream_ensemble", "--log-format", "json", "serve",
             "--bootstrap", bootstrap, "--redis-url", redis_url, "--registry", str(registry),
             "--features-topic", features, "--scores-topic", scores, "--dlq-topic", dlq, "--group", kafka.group_id,
             "--partitions", str(parts)],
            stdout=log_file, stderr=log_file, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        ready = _wait_until_assigned(log_path, log_start, lambda: worker.poll() is None, timeout_s=60)
        echo(f"   worker joined the group in {ready:.1f}s" if ready >= 0 else "   worker not assigned yet; publishing anyway")
        join_ready = experiment.wait_ready(timeout_s=90)
        echo(f"   outcome join ready after {join_ready:.1f}s more" if join_ready >= 0 else "   outcome join not ready yet")
        echo(f"== publishing {n_events} held-out feature events + {n_malformed} malformed ones")
        run = produce_events(bootstrap, registry, n_events, n_malformed, features, kafka, run_id)
        scored, dead, last = _collect(kafka, start, run, timeout_s, lambda: worker.poll() is None, scores)
        echo("== publishing the held-out labels as outcomes; waiting for the join")
        published = experiment.publish_outcomes(kafka, scored, run.labels)
        ab_report = experiment.wait_report(published, timeout_s=90)
    finally:
        join_code = experiment.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = -9
    correct = sum(int(doc["decision"] == run.labels[eid]) for eid, doc in scored.items())
    elapsed = max(last - run.produced_at, 1e-9)
    lost = (run.produced_valid - len(scored)) + (len(run.malformed) - len(dead))
    hits = sum(1 for d in scored.values() if d.get("cache_hit"))
    batch_ms = np.array([d["latency_ms"] for d in scored.values()]) if scored else np.zeros(1)
    e2e_ms = np.array([(d.pop("_arrived") - d["timestamp"]) * 1000 for d in scored.values()]) if scored else np.zeros(1)
    echo("")
    echo("== summary")
    echo(f"   produced       {run.produced_valid + len(run.malformed)} ({run.produced_valid} valid, {len(run.malformed)} malformed)")
    echo(f"   scored         {len(scored)}  (cache hits {hits}: {len(set(run.rows))} distinct held-out rows, "
         f"each later repeat of a row is served from the Redis cache)")
    echo(f"   dead-lettered  {len(dead)}")
    echo(f"   lost           {lost}")
    echo(f"   accuracy       {correct / max(len(scored), 1):.4f} against the true labels")
    echo(f"   throughput     {len(scored) / elapsed:.0f} events/s end to end (produce -> score arrival)")
    echo(f"   latency        end to end p50 {np.percentile(e2e_ms, 50):.0f} ms, p95 {np.percentile(e2e_ms, 95):.0f} ms; "
         f"scoring per batch p50 {np.percentile(batch_ms, 50):.1f} ms, p95 {np.percentile(batch_ms, 95):.1f} ms")
    echo(f"   worker exit    {code} after SIGTERM; outcome join exit {join_code}")
    echo("== three sample scored events")
    for doc in list(scored.values())[:3]:
        echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    from stream_ensemble.ab.table import render_table

    echo(f"== the experiment ({published} outcomes published, {ab_report['joined']} joined)")
    echo(render_table(ab_report))
    summary = {
        "produced": run.produced_valid + len(run.malformed),
        "scored": len(scored),
        "dead_lettered": len(dead),
        "lost": lost,
        "accuracy": round(correct / max(len(scored), 1), 4),
        "events_per_s": round(len(scored) / elapsed, 1),
        "arms": {arm: a["n"] for arm, a in ab_report["arms"].items()},
        "winner": ab_report["winner"],
    }
    if code != 0:
        echo(f"worker exited with {code}; see {log_path}", err=True)
    return summary


def _clear_cache(redis_url: str, ensemble_tag: str) -> int:
    """Delete this ensemble's prediction-cache keys (the demo starts cold every time)."""
    from stream_ensemble.adapters.redis_store import connect, is_cluster
    from stream_ensemble.config import RedisConfig

    client = connect(RedisConfig(url=redis_url))
    keys = list(client.scan_iter(match=f"se:cache:{ensemble_tag}:*", count=1000))
    step = 1 if is_cluster(client) else 1000  # a cluster refuses multi-key commands across slots
    for k in range(0, len(keys), step):
        client.unlink(*keys[k : k + step])
    return len(keys)


def _deployed(redis: RedisConfig) -> str | None:
    """The version a fleet serves when ``se:deploy:default`` is set (the worker serves it)."""
    from stream_ensemble.adapters.deploy_store import RedisDeployStore
    from stream_ensemble.adapters.redis_store import connect

    return RedisDeployStore(connect(redis), redis.key_prefix, "default").current()


def _wait_until_assigned(log_path: Path, offset: int, alive: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until the worker logged its partition assignment (-1 on timeout or death).

    Waiting keeps the consumer-group join out of the demo's events/s figure.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and alive():
        with log_path.open("rb") as fh:
            fh.seek(offset)
            if b'"assigned [' in fh.read():
                return time.monotonic() - t0
        time.sleep(0.2)
    return -1.0


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"command failed ({proc.returncode}): {' '.join(cmd)}")
