"""One scenario's run: topics, workers, producers, collector and sampler wired together, and
the per-scenario figures computed from what the collector read.

Definitions (every figure counts by event_id):

- ``produced``: messages the broker acknowledged (good + poison); ``lost``: produced, never
  on the scores or DLQ topic; ``duplicates``: outputs beyond one per event;
- ``max_stall_s``: per input partition (the producer sends event ``i`` to ``i mod P``), the
  longest gap between two consecutive first outputs, minus the part of it when the broker was
  down (nothing can be written then); the largest over partitions;
- ``degraded``: good events whose scored event says ``degraded: true``; ``degraded_actual``:
  good events whose ``models_used`` or ``probability`` (by more than 1e-4) differs from a
  reference scoring of the same features by the clean ensemble in this process (all members
  healthy, no cache); ``degraded_unflagged``: actual and not flagged.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer as KafkaProducer

from stream_ensemble.bench.faults.harness import (
    QUIET_CLIENT_LOG,
    BenchEnv,
    Collector,
    Producer,
    Sampler,
    Supervisor,
    create_topics,
)
from stream_ensemble.bench.throughput_procs import distinct_record
from stream_ensemble.errors import KafkaAdapterError


class Reference:
    """``models_used`` of event ``i`` as the clean ensemble scores it alone, all members healthy."""

    def __init__(self, registry: Path, records: list[dict[str, Any]]) -> None:
        self.registry, self.records = registry, records
        self.models: list[tuple[str, ...]] = []
        self.probability: list[float] = []
        self._service: Any = None

    def upto(self, n: int) -> list[tuple[str, ...]]:
        """Reference ``models_used`` of events ``0 .. n-1`` (computed once, in batches of 500;
        ``probability`` is filled alongside)."""
        if len(self.models) < n:
            from stream_ensemble.core.registry import Registry
            from stream_ensemble.serving.engine import ScoringService
            from stream_ensemble.serving.loading import load_serving_ensemble
            from stream_ensemble.testing import InMemoryHealth, raw

            if self._service is None:
                ens = load_serving_ensemble(Registry(self.registry))
                self._service = ScoringService(ens, InMemoryHealth(), cache=None, cache_ttl_s=0, explain="none")
            for lo in range(len(self.models), n, 500):
                msgs = [raw(orjson.dumps({"event_id": f"r-{i}", "entity_id": "r", "timestamp": 1.0,
                                          "features": distinct_record(self.records, i)}), offset=i)
                        for i in range(lo, min(n, lo + 500))]
                out = self._service.handle(msgs)
                docs = [orjson.loads(v) for _, v, _ in out.scored]
                self.models += [tuple(d["models_used"]) for d in docs]
                self.probability += [float(d["probability"]) for d in docs]
        return self.models[:n]


@dataclass
class RunOptions:
    """What differs between scenarios' runs."""

    workers: int = 1
    bootstrap: str | None = None
    redis_url: str | None = None
    registry: Path | None = None
    replication: int = 1
    detail: bool = True
    compare: bool = True
    serve_args: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class Run:
    """A scenario's run; use as a context manager (workers stopped and collector closed on exit)."""

    def __init__(self, env: BenchEnv, name: str, opts: RunOptions | None = None) -> None:
        self.env, self.name, self.opts = env, name, opts or RunOptions()
        self.bootstrap = self.opts.bootstrap or env.bootstrap
        self.redis_url = self.opts.redis_url or env.redis_url
        self.registry = self.opts.registry or env.registry
        self.prefix = f"f{uuid.uuid4().hex[:8]}"
        self.partitions = env.partitions
        self.dir = env.work_dir / f"{name}-{self.prefix}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.topics = tuple(f"bench-faults-{self.prefix}-{t}" for t in ("features", "scores", "dlq"))
        self.records_file = self.dir / "records.json"
        self.records_file.write_bytes(orjson.dumps(env.records))
        self.supervisors: list[Supervisor] = []
        self.blackouts: list[tuple[float, float]] = []
        self.marks: list[tuple[float, str]] = []
        self.producers: list[Producer] = []
        self.poison_kinds: dict[str, str] = {}
        self.collector = Collector(self.bootstrap, self.topics[1], self.topics[2], self.prefix, self.opts.detail)
        self.sampler: Sampler | None = None
        self.t0 = time.time()

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> Run:
        create_topics(self.bootstrap, self.topics, self.partitions, self.opts.replication)
        self.collector.start()
        self.sampler = Sampler(self.supervisors, self.redis_url)
        self.sampler.start()
        for _ in range(self.opts.workers):
            self.add_worker()
        self._warm_up()
        self.t0 = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.supervisors:
            s.stop()
        self.collector.stop.set()
        self.collector.join(15)
        if self.sampler is not None:
            self.sampler.stop.set()
            self.sampler.join(5)

    def add_worker(self) -> Supervisor:
        """Start one more supervised ``serve`` process in the run's group."""
        cmd = [sys.executable, "-m", "stream_ensemble", "--log-format", "json", "serve", "--bootstrap", self.bootstrap,
               "--redis-url", self.redis_url, "--registry", str(self.registry), "--features-topic", self.topics[0],
               "--scores-topic", self.topics[1], "--dlq-topic", self.topics[2], "--group", f"bench-faults-{self.prefix}",
               "--partitions", str(self.partitions), *self.opts.serve_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SE_KEY_PREFIX": self.prefix}
        sup = Supervisor(cmd, env, self.dir / f"worker-{len(self.supervisors)}.log").start()
        self.supervisors.append(sup)
        return sup

    def _warm_up(self, n: int = 30, timeout_s: float = 240.0) -> None:
        """Until the group scores events on every partition (models loaded, partitions assigned)."""
        p = KafkaProducer({"bootstrap.servers": self.bootstrap, "acks": "all"}, logger=QUIET_CLIENT_LOG)
        for i in range(n):
            doc = {"event_id": f"warm-{i}", "entity_id": "warm", "timestamp": time.time(),
                   "features": self.env.records[i % len(self.env.records)]}
            p.produce(self.topics[0], value=orjson.dumps(doc), partition=i % self.partitions)
        p.flush(60)
        deadline = time.monotonic() + timeout_s
        while self.collector.warm < n:
            if time.monotonic() > deadline:
                raise KafkaAdapterError(f"{self.name}: workers scored {self.collector.warm}/{n} warm-up events "
                                        f"in {timeout_s:.0f} s; see {self.dir}")
            time.sleep(0.2)

    # ---------------------------------------------------------------- actions
    def mark(self, label: str) -> float:
        """Note a fault action on the timeline."""
        now = time.time()
        self.marks.append((now, label))
        self.env.log(f"   {self.name} +{now - self.t0:.1f}s {label}")
        return now

    def produce(self, events: int, rate: float | None = None, poison: list[tuple[str, str, bytes]] | None = None,
                poison_every: int = 10) -> Producer:
        """Start a steady producer; ``poison`` is ``(event_id, kind, value)`` sent among the good events."""
        if self.producers:
            raise ValueError("one producer per run (event ids are its sequence numbers)")
        path = None
        if poison:
            import base64

            self.poison_kinds.update({eid: kind for eid, kind, _ in poison})
            path = self.dir / "poison.json"
            path.write_bytes(orjson.dumps([[eid, base64.b64encode(v).decode()] for eid, _, v in poison]))
        args = {"bootstrap": self.bootstrap, "features_topic": self.topics[0], "run_id": self.prefix,
                "records": str(self.records_file), "partitions": self.partitions}
        prod = Producer(args, self.dir, events, rate or self.env.rate, path, poison_every)
        self.producers.append(prod)
        return prod

    def sleep_until(self, t_rel: float) -> None:
        """Sleep until ``t_rel`` seconds after the run's start."""
        time.sleep(max(0.0, self.t0 + t_rel - time.time()))

    def wait_for_outputs(self, n: int, timeout_s: float = 120.0) -> None:
        """Until the collector has read outputs for ``n`` distinct events of this run.

        A fault aimed at a busy worker must wait for this, not for a clock: the producer is a
        separate process, and on a slow machine it can still be starting when a fixed delay ends.
        """
        deadline = time.monotonic() + timeout_s
        while len(self.collector.first_at) < n:
            if time.monotonic() > deadline:
                raise KafkaAdapterError(f"{self.name}: {len(self.collector.first_at)}/{n} outputs in {timeout_s:.0f} s")
            time.sleep(0.05)

    def drain(self, quiet_s: float = 60.0) -> list[dict[str, Any]]:
        """Wait for the producers, then until every produced event has an output (or none comes for ``quiet_s``)."""
        summaries = [p.wait() for p in self.producers]
        want = sum(int(s["produced"]) - int(s["failures"]) for s in summaries)
        last, since = -1, time.monotonic()
        while len(self.collector.first_at) < want and time.monotonic() - since < quiet_s:
            got = len(self.collector.first_at)
            if got != last:
                last, since = got, time.monotonic()
            time.sleep(0.25)
        time.sleep(2.0)  # late duplicates of a re-read batch
        return summaries

    # ---------------------------------------------------------------- figures
    def result(self, summaries: list[dict[str, Any]], reference: Reference | None) -> dict[str, Any]:
        """The scenario's figures (contract keys first)."""
        c = self.collector
        failed = {eid for s in summaries for eid in s["failed_ids"]}
        good_n = int(summaries[0]["good"])  # one producer per run: event ids 0 .. good_n - 1
        good = [f"{self.prefix}-{i}" for i in range(good_n)]
        # the producer sends the poison in list order, as many as there were slots for
        self.poison_kinds = dict(list(self.poison_kinds.items())[:int(summaries[0].get("poison", 0))])
        produced = [e for e in good if e not in failed] + [e for e in self.poison_kinds if e not in failed]
        seen = set(c.scored) | set(c.dead)
        good_ok = [e for e in good if e not in failed]
        flagged = [e for e in good_ok if e in c.degraded]
        actual: list[str] = []
        if reference is not None and self.opts.detail and self.opts.compare:
            ref = reference.upto(good_n)
            # degraded: other members than the clean ensemble's, or another probability
            actual = [e for i, e in enumerate(good) if e in c.models and (
                c.models[e] != ref[i] or abs(c.probability[e] - reference.probability[i]) > 1e-4)]
        stall, raw_gap, at_marks = self._stalls(good_ok)
        s = self.sampler
        out: dict[str, Any] = {
            "name": self.name, "produced": len(produced), "scored": sum(1 for e in produced if e in c.scored),
            "dead_lettered": sum(1 for e in produced if e in c.dead),
            "lost": sum(1 for e in produced if e not in seen),
            "duplicates": sum(c.scored.values()) + sum(c.dead.values()) - len(seen),
            "degraded": len(flagged), "max_stall_s": round(stall, 3),
            "worker_restarts": sum(x.restarts for x in self.supervisors),
            "rss_mb_max": round(s.rss_max, 1) if s else None, "redis_mb_max": round(s.redis_max, 2) if s else None,
            "worker_exits": [rc for x in self.supervisors for rc in x.unexpected_exits()],
            "bench_stops": sum(1 for x in self.supervisors for _, _, e in x.exits if e),
            "degraded_actual": len(actual) if reference is not None and self.opts.compare else None,
            "degraded_unflagged": len(set(actual) - set(flagged)) if reference is not None and self.opts.compare else None,
            "good_dead_lettered": sum(1 for e in good_ok if e in c.dead),
            "max_gap_raw_s": round(raw_gap, 3), "stall_at_marks_s": at_marks, "latency_max_s": round(c.latency_max_s, 3),
            "producer_failures": sum(int(x["failures"]) for x in summaries),
            "marks": [(round(t - self.t0, 2), label) for t, label in self.marks],
            "blackouts_s": [(round(a - self.t0, 2), round(b - self.t0, 2)) for a, b in self.blackouts],
            "duration_s": round(time.time() - self.t0, 1), "load": [round(x, 2) for x in os.getloadavg()],
            "timeline": self._timeline(), "redis_series": self._redis_series(),
        }
        if self.poison_kinds:
            out["poison"] = self._poison(failed)
            out["poison_neighbours_degraded"] = len(set(actual) | set(flagged))
        out.update(self.opts.extra)
        return out

    def _stalls(self, good: list[str]) -> tuple[float, float, list[float]]:
        by_part: dict[int, list[float]] = {}
        first = self.collector.first_at
        for eid in good:
            at = first.get(eid)
            if at is not None:
                by_part.setdefault(int(eid.rsplit("-", 1)[1]) % self.partitions, []).append(at)
        stall = raw = 0.0
        at_marks = [0.0] * len(self.marks)
        for times in by_part.values():
            times.sort()
            for a, b in zip(times, times[1:]):
                dark = sum(max(0.0, min(b, y) - max(a, x)) for x, y in self.blackouts)
                g = b - a - dark
                stall, raw = max(stall, g), max(raw, b - a)
                for k, (t, _) in enumerate(self.marks):
                    if a <= t <= b:
                        at_marks[k] = max(at_marks[k], round(g, 3))
        return stall, raw, at_marks

    def _timeline(self, step: float = 1.0) -> list[int]:
        bins: Counter[int] = Counter(int((t - self.t0) // step) for t in self.collector.stamps if t >= self.t0)
        n = max(bins, default=-1) + 1
        return [bins.get(k, 0) for k in range(n)]

    def _redis_series(self) -> list[tuple[float, float]]:
        series = self.sampler.redis_series if self.sampler else []
        step = max(1, len(series) // 400)
        return [(round(t - self.t0, 1), round(v, 2)) for t, v in series[::step]]

    def _poison(self, failed: set[str]) -> dict[str, dict[str, Any]]:
        c = self.collector
        per: dict[str, dict[str, Any]] = {}
        for eid, kind in self.poison_kinds.items():
            if eid in failed:
                continue
            d = per.setdefault(kind, {"sent": 0, "scored": 0, "dead_lettered": 0, "lost": 0, "error_types": Counter()})
            d["sent"] += 1
            d["scored"] += eid in c.scored
            d["dead_lettered"] += eid in c.dead
            d["lost"] += eid not in c.scored and eid not in c.dead
            if eid in c.dead_kind:
                d["error_types"][c.dead_kind[eid]] += 1
        return {k: {**v, "error_types": dict(v["error_types"])} for k, v in sorted(per.items())}


def kill_worker(run: Run, k: int, sig: int = signal.SIGKILL) -> None:
    """Signal worker ``k`` of ``run`` (its supervisor restarts it unless stopped)."""
    run.mark(f"{signal.Signals(sig).name} worker {k}")
    run.supervisors[k].signal(sig)
