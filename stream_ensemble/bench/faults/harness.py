"""The pieces every fault scenario runs: fresh topics, supervised ``serve`` workers, a steady
producer process, an independent collector that counts by event_id, and samplers.

- The producer (``throughput_procs produce``) sends event ``i`` to partition ``i mod P`` keyed
  by its event_id, at a fixed rate, and prints which events were never acknowledged (those
  were not produced).
- The collector reads the scores and DLQ topics from the beginning: per event_id how many
  outputs, the broker's append time (``LogAppendTime``), ``models_used`` and ``degraded``.
- A :class:`Supervisor` restarts a worker that exits (as systemd or Kubernetes would) and
  records every exit: the ones the bench caused (kill -9, SIGTERM) and the others.
- The sampler reads each worker's RSS (``/proc``) and Redis ``used_memory`` twice a second.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_ensemble.errors import KafkaAdapterError

#: librdkafka's own lines from the bench's observer clients: their connection failures while the
#: bench holds a broker down are the scenario, not news (they went raw to stderr, ~20 per second).
QUIET_CLIENT_LOG = logging.getLogger("stream_ensemble.bench.faults.librdkafka")
QUIET_CLIENT_LOG.propagate = False
QUIET_CLIENT_LOG.addHandler(logging.NullHandler())


@dataclass
class BenchEnv:
    """Where and how a scenario runs (one per ``bench faults`` invocation)."""

    bootstrap: str
    redis_url: str
    registry: Path
    records: list[dict[str, Any]]
    work_dir: Path
    rate: float = 300.0
    partitions: int = 3
    time_scale: float = 1.0
    log: Callable[[str], None] = field(default=lambda _m: None)

    def seconds(self, s: float) -> float:
        """A scenario's nominal duration ``s`` scaled (the short integration test uses < 1)."""
        return s * self.time_scale


def create_topics(bootstrap: str, names: Sequence[str], partitions: int, replication: int = 1) -> None:
    """Fresh topics stamped with the broker's append time (the collector's clock for stalls)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    conf = {"message.timestamp.type": "LogAppendTime", "max.message.bytes": "2000000"}
    futures = admin.create_topics([NewTopic(n, partitions, replication, config=conf) for n in names], request_timeout=30)
    for fut in futures.values():
        fut.result(timeout=60)
    deadline = time.monotonic() + 30
    while not set(names) <= set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise KafkaAdapterError(f"topics {list(names)} not visible after 30 s")
        time.sleep(0.1)


class Collector(threading.Thread):
    """Reads the scores and DLQ topics from the beginning, keyed by event_id.

    ``detail`` keeps each event's ``models_used`` (for the reference comparison); the soak
    turns it off to keep a million events small.
    """

    def __init__(self, bootstrap: str, scores: str, dlq: str, prefix: str, detail: bool = True) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-faults-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "fetch.max.bytes": 8_000_000, "max.partition.fetch.bytes": 4_000_000},
                                 logger=QUIET_CLIENT_LOG)
        self.consumer.subscribe([scores, dlq])
        self.scores_topic, self.prefix, self.detail = scores, prefix + "-", detail
        self.scored: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.dead_kind: dict[str, str] = {}
        self.degraded: set[str] = set()
        self.models: dict[str, tuple[str, ...]] = {}
        self.probability: dict[str, float] = {}
        self.first_at: dict[str, float] = {}  # event_id -> append time of its first output
        self.stamps = array("d")  # append time of every output of this run (for the timeline)
        self.latency_max_s = 0.0
        self.warm = 0  # warm-up events scored (not counted in any figure)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for msg in self.consumer.consume(num_messages=2000, timeout=0.2):
                    value = msg.value()
                    if msg.error() is None and value is not None:
                        self._take(msg.topic() == self.scores_topic, value, msg.timestamp()[1] / 1000.0)
        finally:
            self.consumer.close()

    def _take(self, scored: bool, value: bytes, at: float) -> None:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if scored:
            eid = str(doc.get("event_id"))
        else:
            eid = doc.get("event_id") or ""
            if not eid.startswith(self.prefix) and doc.get("original_key"):
                eid = base64.b64decode(doc["original_key"]).decode(errors="replace")
        if not eid.startswith(self.prefix):
            self.warm += eid.startswith("warm-")
            return
        self.stamps.append(at)
        good = eid[len(self.prefix):].isdigit()  # poison ids are prefix-x<j>
        if eid not in self.first_at:
            self.first_at[eid] = at
            ts = doc.get("timestamp")
            if scored and good and isinstance(ts, (int, float)):
                self.latency_max_s = max(self.latency_max_s, at - float(ts))
        if scored:
            self.scored[eid] += 1
            if doc.get("degraded"):
                self.degraded.add(eid)
            if self.detail and eid not in self.models:
                self.models[eid] = tuple(doc.get("models_used") or ())
                self.probability[eid] = float(doc.get("probability") or 0.0)
        else:
            self.dead[eid] += 1
            self.dead_kind.setdefault(eid, str(doc.get("error_type")))

    def outputs(self) -> int:
        """Outputs of this run read so far (scored + dead-lettered)."""
        return sum(self.scored.values()) + sum(self.dead.values())


class Supervisor:
    """Runs one ``serve`` process and restarts it whenever it exits, until :meth:`stop`.

    ``exits`` holds ``(time, returncode, caused_by_bench)``; ``restarts`` counts every restart.
    """

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, restart_delay_s: float = 1.0) -> None:
        self.cmd, self.env, self.log_path, self.delay = cmd, env, log_path, restart_delay_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[tuple[float, int, bool]] = []
        self.restarts = 0
        self._expected = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Supervisor:
        """Start the worker and the restart loop."""
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        with self.log_path.open("ab") as fh:
            self.proc = subprocess.Popen(self.cmd, stdout=fh, stderr=fh, env=self.env)

    def _loop(self) -> None:
        while True:
            proc = self.proc
            assert proc is not None
            rc = proc.wait()
            with self._lock:
                self.exits.append((time.time(), rc, self._expected))
                self._expected = False
                if self._stopping.is_set():
                    return
            time.sleep(self.delay)
            if self._stopping.is_set():
                return
            self.restarts += 1
            self._spawn()

    @property
    def pid(self) -> int | None:
        """The live worker's pid."""
        proc = self.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the live worker; its exit then counts as caused by the bench."""
        with self._lock:
            self._expected = True
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, no restart; SIGKILL after ``timeout_s``."""
        self._stopping.set()
        self.signal(signal.SIGTERM)
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._thread.join(10)

    def unexpected_exits(self) -> list[int]:
        """Return codes of the exits the bench did not cause."""
        return [rc for _, rc, expected in self.exits if not expected]


def rss_mb(pid: int | None) -> float:
    """Resident set size of a live process, MB (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class Sampler(threading.Thread):
    """Worker RSS and Redis ``used_memory`` every ``every_s`` (a failed Redis read is skipped)."""

    def __init__(self, supervisors: list[Supervisor], redis_url: str, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        import redis

        self.supervisors, self.every_s = supervisors, every_s
        self.client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.rss_max = self.redis_max = 0.0
        self.redis_series: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import redis

        while not self.stop.wait(self.every_s):
            self.rss_max = max([self.rss_max] + [rss_mb(s.pid) for s in self.supervisors])
            try:
                used = int(self.client.info("memory")["used_memory"]) / 1e6
            except redis.RedisError:
                continue
            self.redis_max = max(self.redis_max, used)
            self.redis_series.append((time.time(), used))


class Producer:
    """One ``throughput_procs produce`` process: ``events`` good events at ``rate``/s.

    ``args`` are the process's (bootstrap, features_topic, run_id, records, partitions); its
    summary goes to a file in ``out_dir``.
    """

    def __init__(self, args: dict[str, Any], out_dir: Path, events: int, rate: float, poison: Path | None = None,
                 poison_every: int = 10) -> None:
        args = {**args, "events": events, "rate": rate, "message_timeout_ms": 600_000,
                "poison": str(poison) if poison else None, "poison_every": poison_every}
        self.out = out_dir / f"producer-{uuid.uuid4().hex[:4]}.out"
        with self.out.open("wb") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "stream_ensemble.bench.throughput_procs", "produce",
                                          json.dumps(args)], stdout=fh, stderr=subprocess.STDOUT)

    def wait(self) -> dict[str, Any]:
        """The producer's summary (after every message was acknowledged or timed out)."""
        self.proc.wait()
        lines = [ln for ln in self.out.read_text(errors="replace").splitlines() if ln.startswith("{")]
        if not lines:
            raise KafkaAdapterError(f"the bench producer failed: {self.out.read_text(errors='replace')[-500:]}")
        return dict(json.loads(lines[-1]))
