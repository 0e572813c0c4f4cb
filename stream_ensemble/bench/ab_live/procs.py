"""What ``bench ab`` runs: the ``serve`` worker and the ``ab evaluate`` faust app as
subprocesses, a steady feature producer, and a reader that publishes each scored event's
outcome (its true label) the first time it sees the event scored.

The reader is the "label feedback" of a real deployment: an outcome is published once per
scored event_id, however many times a restarted worker re-scores that event. The outcomes of
events scored inside the experiment are what the join must count (no more, no less); those of
events scored after the experiment stopped carry no arm, and the join counts them unknown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer
from confluent_kafka import Producer as KafkaProducer


@dataclass(frozen=True)
class Topics:
    """One run's fresh topics."""

    features: str
    scores: str
    dlq: str
    shadow: str
    outcomes: str
    outcomes_dlq: str

    @classmethod
    def fresh(cls, run_id: str) -> Topics:
        p = f"bench-ab-{run_id}"
        return cls(f"{p}-features", f"{p}-scores", f"{p}-dlq", f"{p}-shadow", f"{p}-outcomes", f"{p}-outcomes-dlq")


class Proc:
    """A ``python -m stream_ensemble ...`` subprocess with its log file (appended across restarts)."""

    def __init__(self, name: str, args: Sequence[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.args, self.log, self.env = name, list(args), log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[dict[str, Any]] = []

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "stream_ensemble", *self.args], stdout=fh, stderr=fh,
                                         env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int | None:
        """Send ``sig`` and wait; a process that outlives ``timeout_s`` is killed. Returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.exits.append({"signal": signal.Signals(sig).name, "code": code, "at": time.time()})
        return code

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker_args(bootstrap: str, redis_url: str, registry: Path, version: int, topics: Topics, group: str,
                partitions: int) -> list[str]:
    """``serve`` as users run it; no prediction cache, so every event is scored by its arm."""
    return ["--log-format", "json", "serve", "--bootstrap", bootstrap, "--redis-url", redis_url,
            "--registry", str(registry), "--ensemble-version", str(version), "--features-topic", topics.features,
            "--scores-topic", topics.scores, "--dlq-topic", topics.dlq, "--shadow-topic", topics.shadow,
            "--group", group, "--partitions", str(partitions), "--cache-ttl", "0", "--batch-size", "200"]


def faust_args(bootstrap: str, redis_url: str, prefix: str, topics: Topics, app_id: str, partitions: int,
               min_outcomes: int, window_s: float) -> list[str]:
    """``ab evaluate``: the faust outcome join, guardrail and history of this run's topics."""
    return ["ab", "evaluate", "--bootstrap", bootstrap, "--redis-url", redis_url, "--key-prefix", prefix,
            "--scores-topic", topics.scores, "--shadow-topic", topics.shadow, "--outcomes-topic", topics.outcomes,
            "--outcomes-dlq-topic", topics.outcomes_dlq, "--app-id", app_id, "--partitions", str(partitions),
            "--join-window-s", f"{window_s:g}", "--min-outcomes", str(min_outcomes)]


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})


def _send(producer: KafkaProducer, topic: str, key: bytes, value: bytes, failures: list[str]) -> None:
    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.01)


@dataclass
class Stream:
    """Feature events at a steady rate: event ``s-<i>`` of a random entity, on a random held-out row.

    ``labels`` maps every produced event_id to its true class (read by the :class:`Reader`).
    """

    bootstrap: str
    topic: str
    records: list[dict[str, Any]]
    labels_of_rows: list[int]
    rate: float
    entities: int
    seed: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    produced: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(self.seed)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop, wait for every acknowledgement; the number of events produced (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.produced

    def _run(self) -> None:
        producer = _producer(self.bootstrap)
        t0 = time.perf_counter()
        while not self._stop.is_set():
            due = int((time.perf_counter() - t0) * self.rate)
            while self.produced < due:
                i = self.produced
                entity = f"u{int(self._rng.integers(self.entities))}"
                row = int(self._rng.integers(len(self.records)))
                event_id = f"s-{i}"
                doc = {"event_id": event_id, "entity_id": entity, "timestamp": time.time(), "features": self.records[row]}
                self.labels[event_id] = self.labels_of_rows[row]  # before producing: the reader looks it up
                _send(producer, self.topic, entity.encode(), orjson.dumps(doc), self.failures)
                self.produced += 1
            producer.poll(0)
            time.sleep(0.005)
        if producer.flush(60):
            self.failures.append("features not acknowledged within 60 s")


def produce_fixed(bootstrap: str, topic: str, docs: Sequence[dict[str, Any]]) -> None:
    """Produce ``docs`` (feature events) and wait for every acknowledgement."""
    producer, failures = _producer(bootstrap), list[str]()
    for doc in docs:
        _send(producer, topic, str(doc["entity_id"]).encode(), orjson.dumps(doc), failures)
    if producer.flush(60) or failures:
        raise RuntimeError(f"bench ab: feature events not acknowledged: {failures[:3]}")


@dataclass
class Scored:
    """One scored event as the bench reads it."""

    event_id: str
    entity: str
    arm: str
    version: str
    experiment: str | None
    scored_at: float


class Reader(threading.Thread):
    """Reads ``scores`` and the shadow topic from the beginning; publishes each scored stream
    event's outcome once (key entity_id, label = its true class, timestamp = now)."""

    def __init__(self, bootstrap: str, topics: Topics, labels: dict[str, int], keep_docs: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-ab-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([topics.scores, topics.shadow])
        self.topics, self.labels, self.keep_docs = topics, labels, keep_docs
        self.outcomes = _producer(bootstrap)
        self.rows: list[Scored] = []
        self.shadow: list[Scored] = []
        self.docs: dict[str, dict[str, Any]] = {}  # main-topic docs of the fixed (shadow check) events
        self.published: set[str] = set()
        self.in_experiment: set[str] = set()  # published outcomes whose (first) score carried an experiment
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                for msg in self.consumer.consume(num_messages=2000, timeout=0.2):
                    value = msg.value()
                    if msg.error() is None and value is not None:
                        self._one(str(msg.topic()), orjson.loads(value))
                self.outcomes.poll(0)
        finally:
            self.consumer.close()
            if self.outcomes.flush(60):
                self.failures.append("outcomes not acknowledged within 60 s")

    def _one(self, topic: str, doc: dict[str, Any]) -> None:
        eid = str(doc["event_id"])
        row = Scored(eid, str(doc["entity_id"]), str(doc.get("arm")), str(doc["ensemble_version"]),
                     doc.get("experiment"), float(doc["scored_at"]))
        if topic == self.topics.shadow:
            self.shadow.append(row)
            return
        self.rows.append(row)
        if eid.startswith(self.keep_docs):
            self.docs[eid] = doc
        label = self.labels.get(eid)
        if label is not None and eid not in self.published:
            self.published.add(eid)
            if row.experiment:
                self.in_experiment.add(eid)
            out = {"event_id": eid, "label": label, "timestamp": time.time()}
            _send(self.outcomes, self.topics.outcomes, row.entity.encode(), orjson.dumps(out), self.failures)

    def distinct(self, prefix: str) -> int:
        return len({r.event_id for r in list(self.rows) if r.event_id.startswith(prefix)})
