"""``bench deploy``: live swaps of ensemble versions under a steady stream, through the real
broker and Redis, with one deliberately broken version.

Protocol (one worker process, ``serve`` as users run it):

1. the registry is copied into the work directory and the served ensemble ``default@vN``
   gets three more versions: ``vN+1`` and ``vN+2`` (the same models, new versions) and
   ``vN+3``, whose artifact is then altered (the broken version: its sha256 no longer matches);
2. a burst of ``max_events`` measures the worker's maximum rate (events/s between the first
   and last scored batch);
3. a steady stream at ``rate_fraction`` x that rate runs for ``duration_s``; during it the
   bench writes ``se:deploy:default`` as an operator would: deploy vN+1, deploy the broken
   vN+3, deploy vN+2, roll back (to vN+1): three swaps (one a rollback) and one refusal;
4. every scored event is read back: lost and double-scored are counted by event_id, batches
   (one ``scored_at`` per batch) holding more than one version are *mixed*, a swap is *seen*
   at the first batch scored by the new version (``scored_at`` - the deploy write), and
   ``max_stall_s`` is the longest gap between consecutive batches while events were waiting,
   next to the same figure away from any swap (the baseline of the same run).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from stream_ensemble.adapters.deploy_store import RedisDeployStore
from stream_ensemble.adapters.kafka import ensure_topics
from stream_ensemble.adapters.redis_store import connect
from stream_ensemble.config import RedisConfig
from stream_ensemble.core.registry import Registry


@dataclass
class DeployBenchConfig:
    """Inputs of one run."""

    bootstrap: str
    redis_url: str
    registry: Path
    records: list[dict[str, Any]]
    work_dir: Path
    max_events: int = 20_000
    rate_fraction: float = 0.5
    duration_s: float = 24.0
    batch_size: int = 500
    log: Callable[[str], None] = field(default=lambda _m: None)


def prepare_versions(src: Path, dst: Path) -> tuple[int, int, int, int]:
    """Copy ``src`` to ``dst`` and add two good versions and one tampered one of ``default``.

    Returns
    -------
    (base, good1, good2, broken) : versions
    """
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    reg = Registry(dst)
    payload, manifest = reg.load("ensembles", "default")
    base = int(manifest["version"])
    keep = {k: v for k, v in manifest.items() if k not in ("id", "version", "sha256", "created_at", "artifact")}
    good1 = reg.save("ensembles", "default", payload, keep).version
    broken = reg.save("ensembles", "default", payload, keep).version
    good2 = reg.save("ensembles", "default", payload, keep).version
    artifact = dst / "ensembles" / "default" / f"v{broken}" / str(manifest["artifact"])
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes()[:-16] + b"\0" * 16)  # the bytes change, the manifest does not
    return base, good1, good2, broken


class _Reader(threading.Thread):
    """Reads the scores topic: (event_id, ensemble_version, scored_at) of every event."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-deploy-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([topic])
        self.rows: list[tuple[str, str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for msg in self.consumer.consume(num_messages=2000, timeout=0.2):
                    value = msg.value()
                    if msg.error() is None and value is not None:
                        d = orjson.loads(value)
                        self.rows.append((d["event_id"], d["ensemble_version"], d["scored_at"]))
        finally:
            self.consumer.close()


def _produce(producer: Producer, topic: str, records: list[dict[str, Any]], ids: range, prefix: str) -> None:
    for i in ids:
        entity = f"e{i % 997}"
        doc = {"event_id": f"{prefix}-{i}", "entity_id": entity, "timestamp": time.time(), "features": records[i % len(records)]}
        while True:
            try:
                producer.produce(topic, key=entity.encode(), value=orjson.dumps(doc))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)


def _steady(producer: Producer, topic: str, records: list[dict[str, Any]], rate: float, duration_s: float,
            prefix: str) -> int:
    """Produce at ``rate`` events/s for ``duration_s``; returns how many were produced."""
    t0 = time.perf_counter()
    sent = 0
    while (now := time.perf_counter() - t0) < duration_s:
        due = int(now * rate)
        if due > sent:
            _produce(producer, topic, records, range(sent, due), prefix)
            sent = due
        time.sleep(0.005)
    producer.flush(30)
    return sent


def _wait_for(reader: _Reader, n: int, prefix: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len({r[0] for r in reader.rows if r[0].startswith(prefix + "-")}) >= n:
            return
        time.sleep(0.2)


def run(cfg: DeployBenchConfig) -> dict[str, Any]:
    """One run; the JSON-ready result (contract keys first, then details)."""
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    reg_dir = cfg.work_dir / "registry"
    base, good1, good2, broken = prepare_versions(cfg.registry, reg_dir)
    tag = "default@v{}".format
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bd{run_id}"
    topics = {"features": f"bench-deploy-{run_id}-features", "scores": f"bench-deploy-{run_id}-scores",
              "dlq": f"bench-deploy-{run_id}-dlq"}
    ensure_topics(cfg.bootstrap, [(topics["features"], 3), (topics["scores"], 3), (topics["dlq"], 1)])
    store = RedisDeployStore(connect(RedisConfig(url=cfg.redis_url, key_prefix=prefix)), prefix, "default")
    log_path = cfg.work_dir / "worker.log"
    cmd = [sys.executable, "-m", "stream_ensemble", "--log-format", "json", "serve", "--bootstrap", cfg.bootstrap,
           "--redis-url", cfg.redis_url, "--registry", str(reg_dir), "--ensemble-version", str(base),
           "--features-topic", topics["features"], "--scores-topic", topics["scores"], "--dlq-topic", topics["dlq"],
           "--group", f"bench-deploy-{run_id}", "--partitions", "3", "--cache-ttl", "0", "--batch-size", str(cfg.batch_size)]
    env = {**os.environ, "SE_KEY_PREFIX": prefix}
    reader = _Reader(cfg.bootstrap, topics["scores"])
    reader.start()
    producer = Producer({"bootstrap.servers": cfg.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    with log_path.open("ab") as fh:
        worker = subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env)
        try:
            # warm-up, then the maximum rate from a burst
            _produce(producer, topics["features"], cfg.records, range(200), "warm")
            producer.flush(30)
            _wait_for(reader, 200, "warm", 120)
            cfg.log(f"bench deploy: burst of {cfg.max_events} events for the maximum rate")
            _produce(producer, topics["features"], cfg.records, range(cfg.max_events), "max")
            producer.flush(60)
            _wait_for(reader, cfg.max_events, "max", 300)
            stamps = sorted({r[2] for r in reader.rows if r[0].startswith("max-")})
            max_rate = cfg.max_events / max(stamps[-1] - stamps[0], 1e-3) if len(stamps) > 1 else 0.0
            rate = max(cfg.rate_fraction * max_rate, 10.0)
            cfg.log(f"bench deploy: maximum {max_rate:.0f} events/s; steady stream at {rate:.0f}/s for {cfg.duration_s:.0f} s")
            plan = [(0.2, "deploy", tag(good1)), (0.4, "deploy", tag(broken)), (0.6, "deploy", tag(good2)),
                    (0.8, "rollback", None)]
            actions: list[dict[str, Any]] = []

            def operator() -> None:
                t0 = time.perf_counter()
                for frac, action, version in plan:
                    time.sleep(max(0.0, t0 + frac * cfg.duration_s - time.perf_counter()))
                    target = version if version is not None else store.rollback_target()
                    entry = store.deploy(str(target), "bench", f"bench deploy {action}", action=action)
                    actions.append(entry)

            op = threading.Thread(target=operator)
            steady_t0 = time.time()
            op.start()
            produced_steady = _steady(producer, topics["features"], cfg.records, rate, cfg.duration_s, "s")
            op.join()
            _wait_for(reader, produced_steady, "s", 120)
            time.sleep(1.0)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
            reader.stop.set()
            reader.join(10)
    refusals = store.refusals()
    return _result(reader.rows, produced_steady, max_rate, rate, actions, refusals, tag(broken), steady_t0,
                   cfg, log_path, worker.returncode)


def _result(rows: list[tuple[str, str, float]], produced: int, max_rate: float, rate: float,
            actions: list[dict[str, Any]], refusals: dict[str, Any], broken: str, steady_t0: float,
            cfg: DeployBenchConfig, log_path: Path, exit_code: int | None) -> dict[str, Any]:
    steady = [r for r in rows if r[0].startswith("s-")]
    counts = Counter(r[0] for r in steady)
    ids = {f"s-{i}" for i in range(produced)}
    by_batch: dict[float, set[str]] = defaultdict(set)
    for _, version, at in steady:
        by_batch[at].add(version)
    batches = sorted(by_batch)
    swap_seen = []
    swaps = [a for a in actions if a["version"] != broken]
    for a in swaps:
        later = [at for at in batches if at >= a["when"] and a["version"] in by_batch[at]]
        swap_seen.append(round(later[0] - a["when"], 3) if later else None)
    gaps = [(b - a, a) for a, b in zip(batches, batches[1:])]
    near = [a["when"] for a in actions]
    baseline = [g for g, at in gaps if all(abs(at - w) > 2.0 for w in near)]
    log_text = log_path.read_text(errors="replace")
    return {
        "produced": produced,
        "scored": len(counts),
        "lost": len(ids - set(counts)),
        "double_scored": sum(1 for c in counts.values() if c > 1),
        "mixed_version_batches": sum(1 for v in by_batch.values() if len(v) > 1),
        "swap_seen_s": swap_seen,
        "refused": [{"version": v, "reason": r.get("reason")} for v, r in sorted(refusals.items())],
        "max_stall_s": round(max((g for g, _ in gaps), default=0.0), 3),
        "baseline_max_gap_s": round(max(baseline, default=0.0), 3),
        "broken_served": sum(1 for r in steady if r[1] == broken),
        "refusal_log_lines": log_text.count('"event":"deploy_refused"'),
        "max_rate_events_per_s": round(max_rate, 1),
        "offered_rate_events_per_s": round(rate, 1),
        "duration_s": cfg.duration_s,
        "actions": [{**a, "at_s": round(a["when"] - steady_t0, 3)} for a in actions],
        "events_by_version": dict(Counter(r[1] for r in steady)),
        "worker_exit": exit_code,
        "batches": len(batches),
        "load_avg": list(os.getloadavg()),
        "timeline": _timeline(steady, steady_t0),
    }


def _timeline(steady: list[tuple[str, str, float]], t0: float, step: float = 0.5) -> dict[str, list[float]]:
    """Events scored per ``step`` seconds by each version (for the plot)."""
    out: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for _, version, at in steady:
        out[version][int((at - t0) // step)] += 1
    n = max((k for d in out.values() for k in d), default=0) + 1
    return {v: [d.get(k, 0) / step for k in range(n)] for v, d in sorted(out.items())}


def goals(result: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals, each true or false."""
    seen = result["swap_seen_s"]
    return {
        "lost_0": result["lost"] == 0,
        "double_scored_0": result["double_scored"] == 0,
        "mixed_0": result["mixed_version_batches"] == 0,
        "swaps_seen_le_2s": bool(seen) and all(s is not None and s <= 2.0 for s in seen),
        "stall_le_1s": result["max_stall_s"] <= 1.0,
        "broken_refused_never_served": bool(result["refused"]) and result["broken_served"] == 0,
    }


def render_markdown(result: dict[str, Any]) -> str:
    """The report: contract figures, goals, actions, baseline."""
    g = goals(result)
    lines = ["# bench deploy: live swaps under a steady stream", "",
             f"One worker, maximum {result['max_rate_events_per_s']} events/s (burst), steady stream at "
             f"{result['offered_rate_events_per_s']} events/s for {result['duration_s']} s; load average "
             f"{', '.join(f'{x:.2f}' for x in result['load_avg'])}.", "",
             "| figure | value | goal |", "|---|---|---|"]
    for key, goal in (("produced", ""), ("scored", ""), ("lost", "0"), ("double_scored", "0"),
                      ("mixed_version_batches", "0"), ("swap_seen_s", "each <= 2 s"), ("max_stall_s", "<= 1 s"),
                      ("baseline_max_gap_s", "(same run, away from swaps)"), ("broken_served", "0")):
        lines.append(f"| {key} | {result[key]} | {goal} |")
    lines += ["", "| goal | met |", "|---|---|"] + [f"| {k} | {'yes' if v else 'NO'} |" for k, v in g.items()]
    lines += ["", "| at (s) | action | version | previous |", "|---|---|---|---|"]
    lines += [f"| {a['at_s']} | {a['action']} | {a['version']} | {a['previous']} |" for a in result["actions"]]
    lines += ["", "Refused: " + "; ".join(f"{r['version']}: {r['reason']}" for r in result["refused"]), ""]
    return "\n".join(lines)


def render_png(result: dict[str, Any], path: Path) -> None:
    """Events/s by version over the steady run, with the operator's actions as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for version, series in result["timeline"].items():
        ax.plot([0.5 * k for k in range(len(series))], series, label=version)
    for a in result["actions"]:
        ax.axvline(a["at_s"], color="grey", linestyle="--", linewidth=0.8)
        ax.text(a["at_s"], ax.get_ylim()[1] * 0.95, f" {a['action']} {a['version']}", fontsize=7, rotation=90, va="top")
    ax.set_xlabel("seconds into the steady stream")
    ax.set_ylabel("scored events/s (0.5 s bins)")
    ax.set_title("bench deploy: which version scored, over time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_line(result: dict[str, Any]) -> str:
    """The contract keys as one JSON line."""
    keys = ("produced", "scored", "lost", "double_scored", "mixed_version_batches", "swap_seen_s", "refused", "max_stall_s")
    return orjson.dumps({k: result[k] for k in keys}).decode()
