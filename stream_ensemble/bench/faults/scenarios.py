"""One function per fault scenario of ``bench faults``; :data:`SCENARIOS` lists them in run order.

Each takes a :class:`Context` and returns the scenario's figures (:meth:`Run.result`). The
steady producer runs through the whole fault; the times below are nominal seconds after the
run's start (scaled by ``BenchEnv.time_scale``).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_ensemble.bench.faults.harness import BenchEnv
from stream_ensemble.bench.faults.poison import poison_events
from stream_ensemble.bench.faults.run import Reference, Run, RunOptions, kill_worker
from stream_ensemble.bench.faults.servers import OwnServers


@dataclass
class Context:
    """What every scenario may use."""

    env: BenchEnv
    servers: OwnServers
    soak_events: int = 1_000_000
    soak_rate: float = 1500.0
    soak_guard_mb: float = 1024.0
    reference: Reference = field(init=False)
    _up: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.reference = Reference(self.env.registry, self.env.records)

    def own_kafka(self) -> str:
        """The bench's own broker (started on first use)."""
        if "kafka" not in self._up:
            self.env.log(f"   starting the bench's own broker on {self.servers.bootstrap}")
            self.servers.kafka_start()
            self._up.add("kafka")
        return self.servers.bootstrap

    def own_redis(self) -> str:
        """The bench's own Redis (``ops/redis.sh`` settings; started on first use)."""
        if "redis" not in self._up:
            self.servers.redis_start()
            self._up.add("redis")
        return self.servers.redis_url

    def most_used_member(self) -> str:
        """The member the clean ensemble uses on most events (the one worth breaking)."""
        used = Counter(m for ms in self.reference.upto(500) for m in ms)
        return used.most_common(1)[0][0]

    def events(self, seconds: float, rate: float | None = None) -> int:
        """Events a steady producer sends in ``seconds`` (scaled)."""
        return max(int((rate or self.env.rate) * self.env.seconds(seconds)), 10)


def _at(run: Run, t: float) -> None:
    run.sleep_until(run.env.seconds(t))


def kill9_x3(ctx: Context) -> dict[str, Any]:
    """Two workers; kill -9 one of them three times (the supervisor restarts it)."""
    with Run(ctx.env, "kill9_x3", RunOptions(workers=2)) as run:
        run.produce(ctx.events(60))
        for k, t in enumerate((10, 25, 40)):
            _at(run, t)
            kill_worker(run, k % 2)
        return run.result(run.drain(), ctx.reference)


def join_sigterm(ctx: Context) -> dict[str, Any]:
    """One worker; a second joins at 10 s; the first gets SIGTERM at 25 s (not restarted)."""
    with Run(ctx.env, "join_sigterm") as run:
        run.produce(ctx.events(40))
        _at(run, 10)
        run.mark("second worker joins")
        run.add_worker()
        _at(run, 25)
        run.mark("SIGTERM worker 0")
        run.supervisors[0].stop()
        return run.result(run.drain(), ctx.reference)


def _broker_down(ctx: Context, name: str, down_s: float) -> dict[str, Any]:
    bootstrap = ctx.own_kafka()
    with Run(ctx.env, name, RunOptions(bootstrap=bootstrap)) as run:
        run.produce(ctx.events(10 + down_s + 40))
        _at(run, 10)
        t_stop = run.mark(f"broker stopped for {down_s:.0f} s")
        ctx.servers.kafka_stop()
        time.sleep(ctx.env.seconds(down_s))
        took = ctx.servers.kafka_start()
        t_up = run.mark(f"broker serving again (start took {took:.1f} s)")
        run.blackouts.append((t_stop, t_up))
        run.opts.extra["outage_s"] = round(t_up - t_stop, 1)
        return run.result(run.drain(quiet_s=120), ctx.reference)


def broker_down_20s(ctx: Context) -> dict[str, Any]:
    """The broker stopped for 20 s (plus its start-up time) under the steady stream."""
    return _broker_down(ctx, "broker_down_20s", 20)


def broker_down_90s(ctx: Context) -> dict[str, Any]:
    """The broker stopped for 90 s (longer than the producer's 30 s default timeouts)."""
    return _broker_down(ctx, "broker_down_90s", 90)


def redis_down_20s(ctx: Context) -> dict[str, Any]:
    """Redis stopped for 20 s: scoring should go on (Redis is advisory)."""
    redis_url = ctx.own_redis()
    with Run(ctx.env, "redis_down_20s", RunOptions(redis_url=redis_url)) as run:
        run.produce(ctx.events(45))
        _at(run, 10)
        run.mark("Redis stopped")
        ctx.servers.redis_stop()
        _at(run, 30)
        ctx.servers.redis_start()
        run.mark("Redis started")
        return run.result(run.drain(), ctx.reference)


def redis_restart(ctx: Context) -> dict[str, Any]:
    """A member marked down, then Redis restarted: is the mark kept and still honoured?"""
    import redis

    redis_url = ctx.own_redis()
    member = ctx.most_used_member()
    with Run(ctx.env, "redis_restart", RunOptions(redis_url=redis_url, compare=False)) as run:
        client = redis.Redis.from_url(redis_url)
        run.produce(ctx.events(35))
        _at(run, 5)
        client.hset(f"{run.prefix}:health", member, "down")
        t_mark = run.mark(f"{member} marked down")
        _at(run, 15)
        run.mark("Redis restart")
        ctx.servers.redis_stop()
        ctx.servers.redis_start()
        t_back = run.mark("Redis back")
        kept = client.hget(f"{run.prefix}:health", member)
        res = run.result(run.drain(), ctx.reference)
        c = run.collector

        def using(lo: float, hi: float) -> int:
            return sum(1 for e, at in c.first_at.items() if lo <= at <= hi and member in c.models.get(e, ()))

        res.update({"marked_member": member, "health_mark_kept": kept == b"down",
                    "marked_used_before_restart": using(t_mark + 3, t_back - 5),
                    "marked_used_after_restart": using(t_back + 3, float("inf"))})
        return res


def _faulty_registry(ctx: Context, dst: Path, member: str, mode: str) -> Path:
    """A copy of the registry whose ensemble's ``member`` is a :class:`FaultyEstimator`."""
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.testing import FaultyEstimator

    shutil.copytree(ctx.env.registry, dst)
    reg = Registry(dst)
    payload, manifest = reg.load("ensembles", "default")
    tags = list(manifest["members"])
    # ``member`` is a tag (``name@vN``, as scored events list them) or a bare name
    tag = next(t for t in tags if member in (t, t.rpartition("@v")[0]))
    member = tag.rpartition("@v")[0]
    est, mm = reg.load("models", member, int(tag.rpartition("@v")[2]))
    keep = {k: v for k, v in mm.items() if k not in ("id", "version", "sha256", "created_at", "artifact")}
    # A test double no safe format holds: pickled, and the run's workers get --trust-pickle.
    ref = reg.save("models", member, FaultyEstimator(est, mode, sleep_s=2.0), keep, fmt="pickle")
    ekeep = {k: v for k, v in manifest.items() if k not in ("id", "version", "sha256", "created_at", "artifact")}
    ekeep["members"] = [ref.tag if t == tag else t for t in tags]
    reg.save("ensembles", "default", payload, ekeep)
    return dst


def _member(mode: str) -> Callable[[Context], dict[str, Any]]:
    def scenario(ctx: Context) -> dict[str, Any]:
        member = ctx.most_used_member()
        name = f"member_{ {'raise': 'raises', 'nan': 'nan', 'out_of_range': 'out_of_range', 'sleep': 'sleeps'}[mode]}"
        registry = _faulty_registry(ctx, ctx.env.work_dir / f"registry-{mode}", member, mode)
        with Run(ctx.env, name, RunOptions(registry=registry, serve_args=("--trust-pickle",))) as run:
            run.mark(f"{member} is faulty ({mode}) from the start")
            run.produce(ctx.events(30))
            res = run.result(run.drain(), ctx.reference)
            res.update({"faulty_member": member,
                        "events_using_faulty": sum(1 for m in run.collector.models.values() if member in m)})
            return res

    scenario.__doc__ = f"The most used member {mode}s on every call (a test-only wrapper in a registry copy)."
    return scenario


member_raises, member_nan, member_out_of_range, member_sleeps = (
    _member(m) for m in ("raise", "nan", "out_of_range", "sleep"))


def poison_mix(ctx: Context) -> dict[str, Any]:
    """Good events with a poison event after every k-th (item 10's cases, oversize, random bytes, hypothesis)."""
    with Run(ctx.env, "poison_mix") as run:
        n = ctx.events(40)
        poison = poison_events(run.prefix, ctx.env.records[0], copies=3,
                               hypothesis_n=100 if ctx.env.time_scale >= 1 else 20)
        run.produce(n, poison=poison, poison_every=max(1, n // (len(poison) + 1)))
        return run.result(run.drain(), ctx.reference)


def soak(ctx: Context) -> dict[str, Any]:
    """``soak_events`` distinct events at ``soak_rate``/s on the bench's own Redis (ops/ settings)."""
    import redis

    redis_url = ctx.own_redis()
    client = redis.Redis.from_url(redis_url)
    maxmemory = int(client.config_get("maxmemory").get("maxmemory") or 0) / 1e6
    n = ctx.soak_events
    with Run(ctx.env, "soak", RunOptions(redis_url=redis_url, detail=False)) as run:
        prod = run.produce(n, rate=ctx.soak_rate)
        aborted = None
        while prod.proc.poll() is None:
            time.sleep(1.0)
            used = run.sampler.redis_max if run.sampler else 0.0
            if maxmemory == 0 and used > ctx.soak_guard_mb:
                aborted = f"Redis has no maxmemory and passed the bench's {ctx.soak_guard_mb:.0f} MB guard"
                run.mark(f"aborted: {aborted}")
                prod.proc.send_signal(signal.SIGTERM)
                break
        res = run.result(run.drain(quiet_s=120), None)
    bounded = maxmemory > 0 and (res["redis_mb_max"] or 0) <= maxmemory * 1.05
    res.update({"redis_maxmemory_mb": maxmemory, "redis_bounded_by_config": bounded, "aborted": aborted,
                "offered_rate": ctx.soak_rate})
    return res


def cluster_broker_killed(ctx: Context) -> dict[str, Any]:
    """The 3-node cluster (RF 3, min.insync 2); node 1 is SIGKILLed under the steady stream."""
    ctx.env.log("   starting the 3-node cluster")
    ctx.servers.cluster_start()
    try:
        with Run(ctx.env, "cluster_broker_killed",
                 RunOptions(bootstrap=ctx.servers.cluster_bootstrap, replication=3)) as run:
            run.produce(ctx.events(45))
            _at(run, 15)
            run.mark("node 1 SIGKILL")
            ctx.servers.cluster_kill(1)
            return run.result(run.drain(quiet_s=120), ctx.reference)
    finally:
        ctx.servers.cluster_stop()


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "kill9_x3": kill9_x3, "join_sigterm": join_sigterm, "member_raises": member_raises, "member_nan": member_nan,
    "member_out_of_range": member_out_of_range, "member_sleeps": member_sleeps, "poison_mix": poison_mix,
    "redis_down_20s": redis_down_20s, "redis_restart": redis_restart, "broker_down_20s": broker_down_20s,
    "broker_down_90s": broker_down_90s, "cluster_broker_killed": cluster_broker_killed, "soak": soak,
}
