"""``bench throughput``: events/s and latency of the worker, measured through the real broker and Redis.

Every run gets fresh topics (the scores topic stamps ``LogAppendTime``, so an event's arrival
is the broker's append time) and a fresh Redis key prefix (its keys are deleted afterwards).
For the maximum-rate runs the bench waits until the worker processes own every partition,
then publishes the whole backlog of distinct events (real rows, :func:`distinct_record`) and
waits until as many outputs are on the scores topic; then it stops the workers (SIGTERM) and
reads every output back: ``events_per_s`` = distinct event_ids scored / (last arrival - start
of publishing), ``lost`` = published event_ids never seen, ``duplicates`` = outputs beyond one
per event_id, CPU = the workers' user + system time (``/proc``) over the same window. The
sustained run has a separate producer process offer events at a fixed rate while one worker
scores them; latency = arrival - the ``timestamp`` the producer set when handing it over.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_ensemble.bench.throughput_procs import distinct_record
from stream_ensemble.errors import KafkaAdapterError

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class ThroughputConfig:
    """What ``bench throughput`` runs (the CLI flags)."""

    bootstrap: str
    redis_url: str
    registry: Path
    large_registry: Path
    records: list[dict[str, Any]]
    work_dir: Path
    events: int = 50_000
    naive_events: int = 400
    large_events: int = 20_000
    processes: tuple[int, ...] = (1, 2, 4)
    rounds: int = 2
    partitions: int = 4
    sustained_rate: float | None = None
    sustained_s: float = 20.0
    stall_s: float = 60.0
    log: Callable[[str], None] = field(default=lambda m: None)


@dataclass
class Outcome:
    """One run's figures (a row of the result's ``runs``, before aggregation over rounds)."""

    worker: str
    processes: int
    pool: str
    events: int
    scored: int
    events_per_s: float
    cpu_us_per_event: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    lost: int
    duplicates: int
    dead_lettered: int
    out_bytes_mean: float


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = stat[stat.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / _TICK


class Bench:
    """Runs the configurations of one ``bench throughput`` invocation."""

    def __init__(self, cfg: ThroughputConfig) -> None:
        self.cfg = cfg
        self.admin = AdminClient({"bootstrap.servers": cfg.bootstrap})
        self.run_seq = 0
        self.cfg.work_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- topics
    def _topics(self, run_id: str) -> tuple[str, str, str]:
        names = (f"bench-{run_id}-features", f"bench-{run_id}-scores", f"bench-{run_id}-dlq")
        new = [NewTopic(names[0], self.cfg.partitions, 1),
               NewTopic(names[1], self.cfg.partitions, 1, config={"message.timestamp.type": "LogAppendTime"}),
               NewTopic(names[2], 1, 1)]
        for name, fut in self.admin.create_topics(new, request_timeout=30).items():
            fut.result(timeout=30)
        deadline = time.monotonic() + 30
        while not set(names) <= set(self.admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise KafkaAdapterError(f"topics {names} not visible after 30 s")
            time.sleep(0.1)
        return names

    def _delete_topics(self, names: tuple[str, str, str]) -> None:
        for fut in self.admin.delete_topics(list(names), request_timeout=30).values():
            try:
                fut.result(timeout=30)
            except Exception:  # a leftover bench topic is harmless; never fail a finished run on it
                pass

    # --------------------------------------------------------------- workers
    def _command(self, worker: str, registry: Path, topics: tuple[str, str, str], group: str,
                 out_bytes: float) -> list[str]:
        if worker == "stream-ensemble":
            return [sys.executable, "-m", "stream_ensemble", "--log-format", "json", "serve",
                    "--bootstrap", self.cfg.bootstrap, "--redis-url", self.cfg.redis_url, "--registry", str(registry),
                    "--features-topic", topics[0], "--scores-topic", topics[1], "--dlq-topic", topics[2],
                    "--group", group, "--partitions", str(self.cfg.partitions)]
        args = {"bootstrap": self.cfg.bootstrap, "group": group, "features_topic": topics[0],
                "scores_topic": topics[1], "batch_size": 1000, "out_bytes": int(out_bytes), "registry": str(registry)}
        return [sys.executable, "-m", "stream_ensemble.bench.throughput_procs", worker, json.dumps(args)]

    def _start(self, cmd: list[str], n: int, run_id: str, prefix: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
        procs = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SE_KEY_PREFIX": prefix}
        for k in range(n):
            log_path = self.cfg.work_dir / f"{run_id}-{k}.log"
            with log_path.open("wb") as fh:
                procs.append((subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env), log_path))
        return procs

    def _wait_stable(self, procs: list[tuple[subprocess.Popen[bytes], Path]], timeout_s: float = 120.0) -> None:
        """Until every process owns partitions, together all of them, unchanged for 1.5 s."""
        want = min(len(procs), self.cfg.partitions)
        t0 = time.monotonic()
        stable_since, last = None, None
        while time.monotonic() - t0 < timeout_s:
            owned = []
            for proc, path in procs:
                if proc.poll() is not None:
                    raise KafkaAdapterError(f"a benchmark worker exited with {proc.returncode}; see {path}")
                mine: set[int] = set()
                for line in path.read_text(errors="replace").splitlines():
                    got = {int(q) for q in re.findall(r"features\[(\d+)\]", line)}
                    if "revoked [" in line:
                        mine -= got
                    elif "assigned [" in line:
                        mine |= got
                owned.append(frozenset(mine))
            union = frozenset().union(*owned)
            ok = len(union) == self.cfg.partitions and sum(1 for o in owned if o) >= want
            if ok and owned == last:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 1.5:
                    return
            else:
                stable_since = None
            last = owned
            time.sleep(0.25)
        raise KafkaAdapterError(f"benchmark workers did not own all {self.cfg.partitions} partitions in {timeout_s:.0f} s")

    @staticmethod
    def _stop(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ------------------------------------------------------------ measuring
    def _publish(self, topic: str, run_id: str, n: int, offset: int) -> float:
        """Publish the backlog (as fast as librdkafka takes it); returns the start time."""
        p = Producer({"bootstrap.servers": self.cfg.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
        recs = self.cfg.records
        started = time.time()
        for i in range(n):
            entity = f"e-{i % 997}"
            doc = {"event_id": f"{run_id}-{i}", "entity_id": entity, "timestamp": time.time(),
                   "features": distinct_record(recs, offset + i)}
            while True:
                try:
                    p.produce(topic, key=entity.encode(), value=orjson.dumps(doc))
                    break
                except BufferError:
                    p.poll(0.01)
            if i % 5000 == 4999:
                p.poll(0)
        if p.flush(60):
            raise KafkaAdapterError("benchmark producer: events not acknowledged")
        return started

    def _end_total(self, probe: Consumer, topic: str) -> int:
        md = probe.list_topics(topic, timeout=10).topics[topic]
        return sum(probe.get_watermark_offsets(TopicPartition(topic, q), timeout=10, cached=False)[1] for q in md.partitions)

    def _wait_outputs(self, topics: tuple[str, str, str], n: int,
                      procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
        """Until the scores + DLQ topics hold ``n`` messages, the workers died, or no progress for stall_s."""
        probe = Consumer({"bootstrap.servers": self.cfg.bootstrap, "group.id": f"bench-probe-{uuid.uuid4().hex[:6]}"})
        try:
            last, last_change = -1, time.monotonic()
            while True:
                total = self._end_total(probe, topics[1]) + self._end_total(probe, topics[2])
                if total >= n or all(p.poll() is not None for p, _ in procs):
                    return
                if total != last:
                    last, last_change = total, time.monotonic()
                elif time.monotonic() - last_change > self.cfg.stall_s:
                    self.cfg.log(f"   no progress for {self.cfg.stall_s:.0f} s at {total}/{n} outputs: stopping")
                    return
                time.sleep(0.1)
        finally:
            probe.close()

    def _read(self, topic: str) -> tuple[dict[str, tuple[float, float]], int, float]:
        """Every output of ``topic``: event_id -> (first arrival, event timestamp), count, mean bytes."""
        c = Consumer({"bootstrap.servers": self.cfg.bootstrap, "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False})
        seen: dict[str, tuple[float, float]] = {}
        count, size = 0, 0
        try:
            md = c.list_topics(topic, timeout=10).topics[topic]
            ends = {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=10, cached=False)[1] for q in md.partitions}
            c.assign([TopicPartition(topic, q, 0) for q in ends])
            left = {q for q, e in ends.items() if e > 0}
            deadline = time.monotonic() + 120
            while left and time.monotonic() < deadline:
                for msg in c.consume(num_messages=5000, timeout=0.5):
                    if msg.error():
                        continue
                    value = msg.value() or b"{}"
                    doc = orjson.loads(value)
                    count += 1
                    size += len(value)
                    eid = doc.get("event_id", "")
                    arrival = msg.timestamp()[1] / 1000.0
                    if eid not in seen or arrival < seen[eid][0]:
                        seen[eid] = (arrival, float(doc.get("timestamp", arrival)))
                    if (msg.offset() or 0) >= ends[msg.partition() or 0] - 1:
                        left.discard(msg.partition())
        finally:
            c.close()
        return seen, count, size / max(count, 1)

    def _cleanup_redis(self, prefix: str) -> None:
        from stream_ensemble.adapters.redis_store import connect
        from stream_ensemble.config import RedisConfig

        client = connect(RedisConfig(url=self.cfg.redis_url))
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for k in range(0, len(keys), 1000):
            client.unlink(*keys[k:k + 1000])

    def run(self, worker: str, processes: int, pool: str, n: int, out_bytes: float = 0.0,
            rate: float | None = None) -> Outcome:
        """One run: fresh topics and key prefix, start the workers, feed them, read back, clean up."""
        self.run_seq += 1
        run_id = f"{uuid.uuid4().hex[:8]}"
        prefix = f"sebench-{run_id}"
        registry = self.cfg.large_registry if pool == "large" else self.cfg.registry
        topics = self._topics(run_id)
        procs = self._start(self._command(worker, registry, topics, f"bench-{run_id}", out_bytes), processes, run_id, prefix)
        try:
            self._wait_stable(procs)
            cpu0 = sum(_cpu_s(p.pid) for p, _ in procs)
            if rate is None:
                started = self._publish(topics[0], run_id, n, self.run_seq * 10_000_000)
                self._wait_outputs(topics, n, procs)
            else:
                started = time.time()
                producer = self._produce_paced(topics[0], run_id, n, rate)
                self._wait_outputs(topics, n, procs)
                producer.wait(timeout=60)
            cpu = sum(_cpu_s(p.pid) for p, _ in procs) - cpu0
        finally:
            self._stop(procs)
        seen, count, mean_bytes = self._read(topics[1])
        dead = self._read(topics[2])[1]
        self._delete_topics(topics)
        self._cleanup_redis(prefix)
        wanted = {f"{run_id}-{i}" for i in range(n)}
        ok = {eid: v for eid, v in seen.items() if eid in wanted}
        lat = np.array([(a - ts) * 1000.0 for a, ts in ok.values()]) if ok else np.full(1, np.nan)
        last = max((a for a, _ in ok.values()), default=started)
        return Outcome(
            worker=worker, processes=processes, pool=pool, events=n, scored=len(ok),
            events_per_s=len(ok) / max(last - started, 1e-9), cpu_us_per_event=cpu * 1e6 / max(len(ok), 1),
            p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)),
            p99_ms=float(np.percentile(lat, 99)), lost=len(wanted) - len(ok), duplicates=count - len(seen),
            dead_lettered=dead, out_bytes_mean=mean_bytes,
        )

    def _produce_paced(self, topic: str, run_id: str, n: int, rate: float) -> subprocess.Popen[bytes]:
        records_file = self.cfg.work_dir / f"{run_id}-records.json"
        records_file.write_bytes(orjson.dumps([distinct_record(self.cfg.records, self.run_seq * 10_000_000 + i)
                                               for i in range(len(self.cfg.records))]))
        args = {"bootstrap": self.cfg.bootstrap, "features_topic": topic, "events": n, "rate": rate,
                "run_id": run_id, "records": str(records_file)}
        with (self.cfg.work_dir / f"{run_id}-producer.log").open("wb") as fh:
            return subprocess.Popen([sys.executable, "-m", "stream_ensemble.bench.throughput_procs", "produce",
                                     json.dumps(args)], stdout=fh, stderr=fh)


def _row(outcomes: list[Outcome]) -> dict[str, Any]:
    """One ``runs`` entry: the median round by events/s, with every round's figure beside it."""
    by_rate = sorted(outcomes, key=lambda o: o.events_per_s)
    mid = by_rate[(len(by_rate) - 1) // 2]
    return {
        "worker": mid.worker, "processes": mid.processes, "pool": mid.pool, "events": mid.events,
        "events_per_s": round(statistics.median(o.events_per_s for o in outcomes), 1),
        "cpu_us_per_event": round(mid.cpu_us_per_event, 1),
        "p50_ms": round(mid.p50_ms, 1), "p95_ms": round(mid.p95_ms, 1), "p99_ms": round(mid.p99_ms, 1),
        "lost": sum(o.lost for o in outcomes), "duplicates": sum(o.duplicates for o in outcomes),
        "dead_lettered": sum(o.dead_lettered for o in outcomes),
        "out_bytes_mean": round(mid.out_bytes_mean, 1),
        "rounds_events_per_s": [round(o.events_per_s, 1) for o in outcomes],
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(cfg: ThroughputConfig) -> dict[str, Any]:
    """Every configuration, ``cfg.rounds`` interleaved rounds, then the sustained run.

    Returns
    -------
    dict
        The result (``runs``, ``sustained``, ``ratios``, ``machine``), JSON-ready.
    """
    bench = Bench(cfg)
    load_before = _load()
    t0 = time.perf_counter()
    plan = [("stream-ensemble", 1, "default", cfg.events), ("passthrough", 1, "default", cfg.events),
            ("naive", 1, "default", cfg.naive_events)]
    plan += [("stream-ensemble", p, "default", cfg.events) for p in cfg.processes if p != 1]
    # the broker's own 2-process scaling on this machine: the yardstick for the 2-process goal
    plan += [("passthrough", 2, "default", cfg.events)] if 2 in cfg.processes else []
    plan += [("stream-ensemble", 1, "large", cfg.large_events)]
    results: dict[tuple[str, int, str], list[Outcome]] = {}
    out_bytes = 0.0
    for r in range(cfg.rounds):
        for worker, procs, pool, n in plan:
            o = bench.run(worker, procs, pool, n, out_bytes)
            if worker == "stream-ensemble" and procs == 1 and pool == "default":
                out_bytes = o.out_bytes_mean  # the passthrough's outputs are this size
            results.setdefault((worker, procs, pool), []).append(o)
            cfg.log(f"round {r + 1}/{cfg.rounds} {worker} x{procs} {pool}: {o.events_per_s:,.0f} events/s, "
                    f"{o.cpu_us_per_event:.0f} us CPU/event, lost {o.lost}, duplicates {o.duplicates} (load {_load()[0]})")
    runs = [_row(v) for v in results.values()]
    rate_of = {(r["worker"], r["processes"], r["pool"]): r["events_per_s"] for r in runs}
    one = rate_of[("stream-ensemble", 1, "default")]
    rate = cfg.sustained_rate or round(one / 2.0)
    cfg.log(f"sustained: {rate:,.0f} events/s offered for {cfg.sustained_s:.0f} s by a separate producer")
    s = bench.run("stream-ensemble", 1, "default", max(int(rate * cfg.sustained_s), 1), rate=rate)
    sustained = {"offered_per_s": rate, "events": s.events, "events_per_s": round(s.events_per_s, 1),
                 "p50_ms": round(s.p50_ms, 1), "p95_ms": round(s.p95_ms, 1), "p99_ms": round(s.p99_ms, 1),
                 "lost": s.lost, "duplicates": s.duplicates}
    ratios = {
        "vs_passthrough": round(one / rate_of[("passthrough", 1, "default")], 4),
        "vs_naive": round(one / rate_of[("naive", 1, "default")], 1),
        "large_pool_vs_default": round(rate_of[("stream-ensemble", 1, "large")] / one, 4),
        **{f"processes_{p}_vs_1": round(rate_of[("stream-ensemble", p, "default")] / one, 4)
           for p in cfg.processes if p != 1},
    }
    if ("passthrough", 2, "default") in rate_of:
        ratios["passthrough_processes_2_vs_1"] = round(
            rate_of[("passthrough", 2, "default")] / rate_of[("passthrough", 1, "default")], 4)
    return {"runs": runs, "sustained": sustained, "ratios": ratios, "machine": _machine(load_before),
            "config": {"events": cfg.events, "naive_events": cfg.naive_events, "large_events": cfg.large_events,
                       "rounds": cfg.rounds, "partitions": cfg.partitions, "sustained_s": cfg.sustained_s,
                       "rows": len(cfg.records)},
            "elapsed_s": round(time.perf_counter() - t0, 1)}


def _machine(load_before: list[float]) -> dict[str, Any]:
    import platform

    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "load_before": load_before, "load_after": _load()}
