"""``bench ab``: one experiment end to end on the real broker, Redis and the faust app.

Protocol (durations nominal, times ``time_scale``):

1. The registry is copied and gets the *weaker challenger*: a new version of ``default`` whose
   only member is a depth-1 decision tree (a stump) trained on the same fit rows as the champion
   (same split, so the same held-out rows); the champion is the version served before.
2. One ``serve`` worker and one ``ab evaluate`` faust app (subprocesses, fresh topics, own Redis
   key prefix) start; experiment 1 is written to ``se:ab:default``: split, challenger at
   ``fraction``. A steady stream of feature events (random entity out of ``entities``, random
   held-out row) runs; the reader publishes each scored event's true label as its outcome.
   The faust app starts with the guardrail disarmed (``--min-outcomes`` huge), so the routing
   figures are measured with the challenger live.
3. At 30% of phase 1 the worker is killed (SIGKILL) and started again (its own consumer group).
4. At ``phase_s`` (and at least ``0.3 phase_s`` after the restarted worker got its partitions)
   the bench writes the challenger's weight ``switch_to`` into the hash, live.
5. Half-way through phase 2 the faust app is killed (SIGKILL) and started again with the
   guardrail armed (``--min-outcomes min_outcomes``): it resumes from its changelog, and its
   leader stops the challenger once it is worse with anytime-valid confidence.
6. The stream runs until the guardrail has stopped the challenger (plus ``tail_s``), then every
   scored event and every outcome is waited for.
7. Shadow check: ``shadow_events`` fixed events with no experiment, then the same events (new
   ids) with a shadow experiment: the two main-topic outputs are compared field by field.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_ensemble.ab.control import report as ab_report
from stream_ensemble.adapters.ab_store import ABStore
from stream_ensemble.adapters.kafka import ensure_topics
from stream_ensemble.adapters.redis_store import connect
from stream_ensemble.bench.ab_live import figures
from stream_ensemble.bench.ab_live.procs import Proc, Reader, Stream, Topics, faust_args, produce_fixed, worker_args
from stream_ensemble.config import ABConfig, RedisConfig
from stream_ensemble.core.data.datasets import BUNDLED, load_bundled
from stream_ensemble.core.experiments.spec import ExperimentSpec
from stream_ensemble.core.registry import Registry
from stream_ensemble.errors import ConfigError

#: The challenger: what it is, for the report (the served strategy is added from its manifest).
CHALLENGER_DESCRIPTION = ("two depth-1 decision trees (stumps: the best split, and a split on one random feature) "
                          "trained on the champion's fit rows")
DISARMED = 10**9


@dataclass
class ABBenchConfig:
    """Inputs of one run."""

    bootstrap: str
    redis_url: str
    registry: Path
    work_dir: Path
    rate: float = 150.0
    entities: int = 1500
    fraction: float = 0.30
    switch_to: float = 0.50
    phase_s: float = 20.0
    tail_s: float = 3.0
    time_scale: float = 1.0
    partitions: int = 3
    min_outcomes: int = 200
    alpha: float = 0.05
    shadow_events: int = 400
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda _m: None)


def prepare_registry(src: Path, dst: Path) -> tuple[int, int, Any, list[int], str]:
    """Copy ``src`` and add the weak challenger version.

    Returns
    -------
    (champion version, challenger version, dataset, held-out row indices, what the challenger serves)
    """
    from sklearn.tree import DecisionTreeClassifier

    from stream_ensemble.core.members.families import ModelSpec
    from stream_ensemble.core.training import train

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    reg = Registry(dst)
    manifest = reg.manifest("ensembles", "default")
    name = str(manifest.get("dataset"))
    if name not in BUNDLED:
        raise ConfigError(f"bench ab replays a bundled dataset ({', '.join(BUNDLED)}); {src} was trained on {name!r}")
    data = load_bundled(name)
    # training needs two members; both are stumps, so whatever strategy build picks stays weak
    stumps = [ModelSpec("stump", "tree", DecisionTreeClassifier(max_depth=1, random_state=0)),
              ModelSpec("stump_random", "tree", DecisionTreeClassifier(max_depth=1, max_features=1, random_state=3))]
    train(data, stumps, reg)
    base, challenger = int(manifest["version"]), reg.versions("ensembles", "default")[-1]
    rows = [int(r) for r in reg.manifest("ensembles", "default", base)["holdout_rows"]]
    if rows != [int(r) for r in reg.manifest("ensembles", "default", challenger)["holdout_rows"]]:
        raise ConfigError("the challenger's held-out rows differ from the champion's (trained with another split)")
    m = reg.manifest("ensembles", "default", challenger)
    return base, challenger, data, rows, f"{CHALLENGER_DESCRIPTION}; serves {m['strategy']} over {', '.join(m['selected'])}"


def _wait(pred: Callable[[], bool], timeout_s: float, what: str, log: Callable[[str], None]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    log(f"bench ab: timed out after {timeout_s:.0f} s waiting for {what}")
    return False


def _assigned(proc: Proc, since: int) -> bool:
    if not proc.alive():  # a worker that refused to start: say why instead of waiting
        last = (proc.log_text().strip().splitlines() or ["(no log)"])[-1]
        raise ConfigError(f"bench ab: the {proc.name} exited ({proc.log}): {last[:300]}")
    return proc.log_text().count('"assigned [') > since


def run(cfg: ABBenchConfig) -> dict[str, Any]:
    """One run; the JSON-ready result (contract keys first, then details)."""
    # SIGTERM unwinds like Ctrl-C, so the finally below stops the worker and the faust app
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s, say = cfg.time_scale, cfg.log
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    for old in ("worker.log", "faust.log"):
        (cfg.work_dir / old).unlink(missing_ok=True)
    say("bench ab: training the weak challenger (two stumps) into a copy of the registry")
    base, chal_v, data, rows, description = prepare_registry(cfg.registry, cfg.work_dir / "registry")
    champion, chal = f"default@v{base}", f"default@v{chal_v}"
    run_id = uuid.uuid4().hex[:8]
    prefix, app_id, exp1 = f"ab{run_id}", f"bench-ab-{run_id}", f"bench-ab-{run_id}"
    topics = Topics.fresh(run_id)
    p = cfg.partitions
    ensure_topics(cfg.bootstrap, [(topics.features, p), (topics.scores, p), (topics.dlq, 1), (topics.shadow, p),
                                  (topics.outcomes, p), (topics.outcomes_dlq, 1)])
    store = ABStore(connect(RedisConfig(url=cfg.redis_url, key_prefix=prefix)), prefix)
    # The salt follows --seed, not the run id: with the stream's entities (also from the seed) the
    # assignment is then the same in every run, and the binomial check cannot fail by the draw of
    # a salt (1% of random salts would put the observed share outside the 99% interval).
    spec1 = ExperimentSpec("default", exp1, champion, {chal: 100 * cfg.fraction}, "split", salt=f"bench-ab-{cfg.seed}")
    store.write("default", {**spec1.to_fields(), "started_at": repr(time.time())}, replace=True)

    records = data.records(rows)
    labels = [int(data.y[r]) for r in rows]
    worker = Proc("worker", worker_args(cfg.bootstrap, cfg.redis_url, cfg.work_dir / "registry", base, topics,
                                        f"{app_id}-worker", p), cfg.work_dir / "worker.log", {"SE_KEY_PREFIX": prefix})
    window = max(60.0, 4 * cfg.phase_s * s)
    faust = Proc("faust", faust_args(cfg.bootstrap, cfg.redis_url, prefix, topics, app_id, p, DISARMED, window),
                 cfg.work_dir / "faust.log", {})
    stream = Stream(cfg.bootstrap, topics.features, records, labels, cfg.rate, cfg.entities, cfg.seed)
    reader = Reader(cfg.bootstrap, topics, stream.labels, keep_docs=("x-", "y-"))
    marks: dict[str, float] = {}
    reader.start()
    worker.start()
    faust.start()
    try:
        _wait(lambda: _assigned(worker, 0), 120, "the worker's partitions", say)
        say(f"bench ab: {chal} ({description}) at {cfg.fraction:.0%} against {champion}; "
            f"{cfg.rate:g} events/s over {cfg.entities} entities")
        stream.start()
        marks["start"] = time.time()
        time.sleep(cfg.phase_s * s * 0.3)
        marks["worker_killed"] = time.time()
        worker.stop(signal.SIGKILL)
        worker.start()
        _wait(lambda: _assigned(worker, 1), 120, "the restarted worker's partitions", say)
        marks["worker_back"] = time.time()
        say(f"bench ab: worker killed (-9), restarted, assigned after {marks['worker_back'] - marks['worker_killed']:.1f} s")
        # the switch waits until the restarted worker has scored a while: it measures the
        # worker's reading of Redis, not its restart
        time.sleep(max(0.0, marks["start"] + cfg.phase_s * s - time.time(), 0.3 * cfg.phase_s * s))
        store.write("default", {"challengers": f"{chal}={100 * cfg.switch_to:g}"})
        marks["switch"] = time.time()
        say(f"bench ab: challenger weight set to {cfg.switch_to:.0%} in Redis")
        time.sleep(cfg.phase_s * s / 2)
        marks["faust_killed"] = time.time()
        faust.stop(signal.SIGKILL)
        faust.args = faust_args(cfg.bootstrap, cfg.redis_url, prefix, topics, app_id, p, cfg.min_outcomes, window)
        faust.start()
        say(f"bench ab: faust app killed (-9) and restarted with the guardrail armed (min outcomes {cfg.min_outcomes})")
        time.sleep(cfg.phase_s * s / 2)
        if _wait(lambda: store.read("default").get("status") == "stopped: guardrail", 180, "the guardrail", say):
            marks["guardrail"] = time.time()
            say("bench ab: the guardrail stopped the challenger")
        time.sleep(max(cfg.tail_s, 3.0))
        produced = stream.stop()
        marks["stream_end"] = time.time()
        _wait(lambda: reader.distinct("s-") >= produced, 180, "every stream event scored", say)
        abcfg = ABConfig(app_id=app_id, alpha=cfg.alpha, min_outcomes=cfg.min_outcomes)

        def joined() -> int:
            rep = ab_report(store, "default", abcfg)
            return sum(int(a["n"]) for a in rep["arms"].values())

        _wait(lambda: joined() >= len(reader.in_experiment), 180, "every outcome joined", say)
        time.sleep(3.0)  # an outcome counted twice would show by now
        final = ab_report(store, "default", abcfg)
        history = store.history(exp1)
        status = store.read("default")
        shadow = _shadow_check(cfg, store, reader, records, champion, chal, topics, run_id)
    finally:
        stream.stop()
        codes = {"worker": worker.stop(), "faust": faust.stop()}
        reader.halt.set()
        reader.join(90)
    say(f"bench ab: done; worker exit {codes['worker']}, faust exit {codes['faust']}")
    return figures.result(
        cfg=cfg, champion=champion, challenger=chal, description=description, salt=spec1.salt,
        rows=reader.rows, produced=produced, published=len(reader.in_experiment), published_total=len(reader.published), report=final, history=history,
        status=status, marks=marks, shadow=shadow, exits={"worker": worker.exits, "faust": faust.exits},
        failures=stream.failures + reader.failures, join_counts=store.counts(app_id),
    )  # fmt: skip


def _shadow_check(cfg: ABBenchConfig, store: ABStore, reader: Reader, records: list[dict[str, Any]],
                  champion: str, chal: str, topics: Topics, run_id: str) -> dict[str, Any]:
    """The same fixed events without an experiment (``x-``) and with a shadow one (``y-``)."""
    n, say = cfg.shadow_events, cfg.log
    store.client.delete(store.key("default"))
    time.sleep(2.5)  # the worker re-reads the hash each second
    docs = [{"entity_id": f"f{i % 211}", "timestamp": 1.7e9 + i, "features": records[i % len(records)]}
            for i in range(n)]
    produce_fixed(cfg.bootstrap, topics.features, [{"event_id": f"x-{i}", **d} for i, d in enumerate(docs)])
    _wait(lambda: reader.distinct("x-") >= n, 120, "the no-experiment run", say)
    exp2 = f"bench-ab-{run_id}-shadow"
    spec2 = ExperimentSpec("default", exp2, champion, {chal: 100 * cfg.fraction}, "shadow", salt=exp2)
    store.write("default", {**spec2.to_fields(), "started_at": repr(time.time())}, replace=True)
    time.sleep(2.5)
    produce_fixed(cfg.bootstrap, topics.features, [{"event_id": f"y-{i}", **d} for i, d in enumerate(docs)])
    want = figures.expected_shadow(spec2, [str(d["entity_id"]) for d in docs])
    _wait(lambda: reader.distinct("y-") >= n and len({r.event_id for r in list(reader.shadow)}) >= len(want),
          120, "the shadow run", say)
    store.write("default", {"status": "stopped"})
    return figures.shadow_figures(reader.docs, list(reader.shadow), n, want, exp2)
