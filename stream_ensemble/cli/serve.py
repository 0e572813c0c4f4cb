"""``stream-ensemble serve``: the scoring worker (until SIGTERM)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import click

from stream_ensemble.cli.common import config_from, pin_threads, setting_option
from stream_ensemble.cli.registry import trust_pickle_option
from stream_ensemble.config import redacted

log = logging.getLogger("stream_ensemble")


@click.command()
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("worker.registry")
@setting_option("worker.ensemble")
@click.option("--ensemble-version", type=click.IntRange(min=1), default=None, help="Serve this version (default: latest).")
@setting_option("kafka.group_id", "group_id")
@setting_option("kafka.features_topic")
@setting_option("kafka.scores_topic")
@setting_option("kafka.dlq_topic")
@setting_option("kafka.dlq_max_bytes", type=click.IntRange(4096, 990_000))
@setting_option("kafka.batch_size", type=click.IntRange(1, 100_000))
@setting_option("kafka.poll_timeout_s", "max_wait_s", type=click.FloatRange(min=0.001, max=10.0))
@click.option("--max-wait-ms", type=click.IntRange(1, 10_000), default=None, help="Same as --max-wait-s, in milliseconds.")
@setting_option("redis.cache_ttl_s", "cache_ttl", type=click.IntRange(min=0))
@setting_option("worker.explain", type=click.Choice(["none", "summary", "full"]))
@setting_option("worker.max_explain", type=click.Choice(["none", "summary", "full"]))
@setting_option("worker.min_known_share", type=click.FloatRange(0.0, 1.0))
@setting_option("kafka.partitions", type=click.IntRange(1, 1000))
@setting_option("kafka.session_timeout_s", type=click.FloatRange(1.0, 1800.0))
@setting_option("kafka.group_protocol", type=click.Choice(["consumer", "classic"]))
@setting_option("worker.metrics_port", type=click.IntRange(0, 65535))
@setting_option("worker.metrics_host")
@setting_option("worker.deploy_poll_s", type=click.FloatRange(0.0, 1.0))
@setting_option("worker.member_deadline_s", type=click.FloatRange(0.0, 60.0))
@setting_option("worker.breaker_failures", type=click.IntRange(0, 1000))
@setting_option("worker.breaker_cooldown_s", type=click.FloatRange(min=0.001))
@setting_option("worker.fallback", type=click.Choice(["prior", "dlq"]))
@setting_option("ab.shadow_topic")
@setting_option("ab.refresh_s", type=click.FloatRange(min=0.01, max=1.0))
@click.option("--max-idle", type=float, default=None, help="Exit after this many idle seconds (default: run until SIGTERM).")
@trust_pickle_option
@click.pass_context
def serve(ctx: click.Context, bootstrap: str | None, redis_url: str | None, registry: Path | None, ensemble: str | None,
          ensemble_version: int | None, group_id: str | None, features_topic: str | None, scores_topic: str | None,
          dlq_topic: str | None, dlq_max_bytes: int | None, batch_size: int | None, max_wait_s: float | None, max_wait_ms: int | None,
          cache_ttl: int | None, explain: str | None, max_explain: str | None, min_known_share: float | None, partitions: int | None, session_timeout_s: float | None,
          group_protocol: str | None,
          metrics_port: int | None,
          metrics_host: str | None, deploy_poll_s: float | None, member_deadline_s: float | None,
          breaker_failures: int | None, breaker_cooldown_s: float | None, fallback: str | None,
          shadow_topic: str | None, ab_refresh_s: float | None, max_idle: float | None) -> None:
    """Consume feature events, score them, produce scored events (until SIGTERM).

    The version served is the fleet's deploy target (`stream-ensemble deploy NAME@vN`, Redis
    key se:deploy:<ensemble>) when set, else --ensemble-version, else the latest; a new
    target is loaded, validated and swapped in between batches without a restart.
    """
    from stream_ensemble.adapters.deploy_store import RedisDeployStore
    from stream_ensemble.adapters.heartbeat import Heartbeat
    from stream_ensemble.adapters.kafka import KafkaSource, ensure_topics, topic_partitions
    from stream_ensemble.adapters.kafka_sink import KafkaSink
    from stream_ensemble.adapters.metrics import ProbeServer, WorkerMetrics
    from stream_ensemble.adapters.redis_store import RedisCache, RedisHealthStore, connect
    from stream_ensemble.serving.deploy import DeployWatcher
    from stream_ensemble.serving.engine import ScoringService
    from stream_ensemble.serving.ensemble import ServingEnsemble
    from stream_ensemble.serving.loading import load_with_smoke_rows
    from stream_ensemble.serving.versions import LoadedEnsembles
    from stream_ensemble.worker import Worker

    pin_threads()
    cfg = config_from(
        ctx, kafka__bootstrap=bootstrap, kafka__group_id=group_id, kafka__features_topic=features_topic,
        kafka__scores_topic=scores_topic, kafka__dlq_topic=dlq_topic, kafka__dlq_max_bytes=dlq_max_bytes, kafka__batch_size=batch_size,
        kafka__poll_timeout_s=max_wait_ms / 1000.0 if max_wait_ms is not None else max_wait_s,
        kafka__partitions=partitions, kafka__session_timeout_s=session_timeout_s,
        kafka__group_protocol=group_protocol, redis__url=redis_url, redis__cache_ttl_s=cache_ttl,
        worker__registry=registry, worker__ensemble=ensemble, worker__explain=explain,
        worker__max_explain=max_explain, worker__min_known_share=min_known_share,
        worker__metrics_port=metrics_port, worker__metrics_host=metrics_host, worker__deploy_poll_s=deploy_poll_s,
        worker__member_deadline_s=member_deadline_s, worker__breaker_failures=breaker_failures,
        worker__breaker_cooldown_s=breaker_cooldown_s, worker__fallback=fallback,
        ab__shadow_topic=shadow_topic, ab__refresh_s=ab_refresh_s,
    )
    log.info("configuration", extra={"event": "configuration", **redacted(cfg)})
    metrics = WorkerMetrics()
    probes = None
    if cfg.worker.metrics_port:
        # Up before the model loads: /healthz answers at once, /readyz says what is missing.
        probes = ProbeServer(metrics, cfg.worker.metrics_host, cfg.worker.metrics_port).start()
        log.info("metrics on http://%s:%d/metrics", cfg.worker.metrics_host, probes.port,
                 extra={"event": "metrics", "port": probes.port})
    reg = _registry_or_exit(cfg.worker.registry, cfg.worker.ensemble, ensemble_version)
    client = connect(cfg.redis, advisory=True)  # Redis down at start: serve without it, flagged
    deploys = RedisDeployStore(client, cfg.redis.key_prefix, cfg.worker.ensemble)
    ens = _first_version(reg, cfg.worker.ensemble, ensemble_version, deploys)
    metrics.info.info(_build_info(ens))
    metrics.model_loaded = True
    parts = cfg.kafka.partitions
    ensure_topics(cfg.kafka, [(cfg.kafka.features_topic, parts), (cfg.kafka.scores_topic, parts), (cfg.kafka.dlq_topic, 1)])
    have = topic_partitions(cfg.kafka, [cfg.kafka.features_topic]).get(cfg.kafka.features_topic, parts)
    if have < parts:  # e.g. auto-created by a producer that wrote first
        log.warning("topic %s has %d partitions, fewer than the %d asked: at most %d workers of group %s get events "
                    "(`stream-ensemble topics --partitions %d --raise` adds partitions)", cfg.kafka.features_topic, have,
                    parts, have, cfg.kafka.group_id, parts,
                    extra={"event": "partitions", "topic": cfg.kafka.features_topic, "partitions": have, "asked": parts})
    health = RedisHealthStore(client, cfg.redis.key_prefix, cfg.redis.health_refresh_s)
    heartbeat_serving: dict[str, Any] = {}
    reporter, new_guard = _guards(cfg, client, metrics, heartbeat_serving)
    service = ScoringService(
        ens, health,
        RedisCache(client), cfg.redis.cache_ttl_s, cfg.worker.explain, cfg.redis.key_prefix,
        guard=new_guard(), fallback=cfg.worker.fallback, max_explain=cfg.worker.max_explain,
        min_known_share=cfg.worker.min_known_share,
    )
    router = _router(cfg, service, client, health, new_guard)
    stats = {"statistics.interval.ms": 5000, "stats_cb": metrics.kafka_stats}
    source = KafkaSource(cfg.kafka, extra=stats, on_assignment=metrics.assignment)
    sink = KafkaSink(cfg.kafka)
    heartbeat_serving.update({
        "ensemble": ens.tag, "strategy": ens.strategy.name, "members": [m.tag for m in ens.pool.members],
        "features_topic": cfg.kafka.features_topic, "scores_topic": cfg.kafka.scores_topic, "breakers": {},
    })
    heartbeat = Heartbeat(client, metrics, cfg.redis.key_prefix, cfg.kafka.group_id, serving=heartbeat_serving,
                          health=health.down)
    reporter.worker_id = heartbeat.worker_id
    metrics.selection(ens.strategy.selection_id(ens.health_vector(health.down())))  # known before the first batch
    watcher = None
    if cfg.worker.deploy_poll_s > 0:
        def swapped(old: ServingEnsemble, new: ServingEnsemble) -> None:
            heartbeat.serving.update(ensemble=new.tag, strategy=new.strategy.name, members=new.member_tags)
            metrics.info.info(_build_info(new))
            metrics.deploy_swap(new.tag)
            metrics.selection(new.strategy.selection_id(new.health_vector(health.down())))

        watcher = DeployWatcher(
            LoadedEnsembles(ens), deploys, lambda name, v: load_with_smoke_rows(reg, name, v),
            cfg.worker.deploy_poll_s, lambda: frozenset(service.seen_features), swapped,
            on_refuse=metrics.deploy_refused,
        ).start()
    # hot deploy swaps the champion's version; experiments route around it
    worker = Worker(source, sink, router, cfg.kafka, observer=heartbeat, shadow_topic=cfg.ab.shadow_topic,
                    between_batches=(lambda: watcher.apply(service)) if watcher is not None else None)
    worker.install_signal_handlers()
    log.info("serving %s (%d members, strategy %s) from %s to %s", ens.tag, len(ens.pool), ens.strategy.name,
             cfg.kafka.features_topic, cfg.kafka.scores_topic)
    # The loaded models are long-lived: move them out of the cyclic GC's reach so that
    # collections in the hot path scan only the per-batch objects (batch latency -36%).
    gc.collect()
    gc.freeze()
    try:
        worker.run(max_idle_s=max_idle)
    finally:
        if watcher is not None:
            watcher.close()
        heartbeat.close()
        reporter.close()
        source.close()
        if probes is not None:
            probes.close()


def _guards(cfg: Any, client: Any, metrics: Any, heartbeat_serving: dict[str, Any]) -> tuple[Any, Any]:
    """The fault reporter and a factory of member guards (one per scoring service) using it."""
    from stream_ensemble.adapters.faults import FaultReporter
    from stream_ensemble.core.members.breaker import CircuitBreakers, Transition
    from stream_ensemble.core.members.guard import MemberGuard

    reporter = FaultReporter(client, metrics, cfg.redis.key_prefix)

    def transition(t: Transition) -> None:
        reporter.transition(t)
        heartbeat_serving["breakers"] = reporter.snapshot()

    def new_guard() -> MemberGuard:
        w = cfg.worker
        return MemberGuard(w.member_deadline_s or None, CircuitBreakers(w.breaker_failures, w.breaker_cooldown_s, transition),
                           reporter.member)

    return reporter, new_guard


def _router(cfg: Any, champion: Any, client: Any, health: Any, new_guard: Any) -> Any:
    """The experiment router: se:ab:<ensemble> read each second, challenger versions loaded once."""
    from stream_ensemble.adapters.ab_store import ABStore
    from stream_ensemble.adapters.kafka import ensure_topics
    from stream_ensemble.adapters.redis_store import RedisCache
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.serving.engine import ScoringService
    from stream_ensemble.serving.loading import load_serving_ensemble
    from stream_ensemble.serving.router import ExperimentRouter

    store = ABStore(client, cfg.redis.key_prefix)
    ensure_topics(cfg.kafka, [(cfg.ab.shadow_topic, cfg.kafka.partitions)])

    def load(tag: str) -> ScoringService:
        name, _, v = tag.rpartition("@v")
        ens = load_serving_ensemble(Registry(cfg.worker.registry), name, int(v))
        log.info("loaded %s for an experiment", ens.tag, extra={"event": "experiment_version", "version": ens.tag})
        return ScoringService(ens, health, RedisCache(client), cfg.redis.cache_ttl_s, cfg.worker.explain,
                              cfg.redis.key_prefix, guard=new_guard(), fallback=cfg.worker.fallback,
                              max_explain=cfg.worker.max_explain, min_known_share=cfg.worker.min_known_share)

    return ExperimentRouter(champion, cfg.worker.ensemble, lambda: store.read(cfg.worker.ensemble), load,
                            cfg.ab.refresh_s)


def _registry_or_exit(root: Path, ensemble: str, version: int | None) -> Any:
    """The registry, after checking that it holds ``ensemble`` at ``version`` (before Redis).

    A registry, ensemble or version that does not exist, or a manifest that cannot be read, is
    a usage error: one line naming it, exit 2 (``ConfigError``).
    """
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.errors import ConfigError, IntegrityError, ModelPoolError

    if not root.is_dir():
        raise ConfigError(f"registry directory {root} does not exist (run `stream-ensemble train`, or set --registry / SE_REGISTRY)")
    reg = Registry(root)
    try:
        reg.manifest("ensembles", ensemble, version)
    except IntegrityError:
        raise
    except ModelPoolError as exc:
        raise ConfigError(str(exc)) from None
    return reg


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stream-ensemble")
    except PackageNotFoundError:
        return "unknown"


def _build_info(ens: Any) -> dict[str, str]:
    return {"version": _version(), "ensemble": ens.tag, "strategy": ens.strategy.name, "members": ",".join(ens.pool.names)}


def _first_version(reg: Any, fleet: str, pinned: int | None, deploys: Any) -> Any:
    """The version to start with: the deploy target when set and valid, else ``pinned`` / latest.

    A deploy target that fails to load or validate is refused (one log line, recorded in
    Redis) and the worker starts on ``pinned`` / the latest version instead.
    """
    from stream_ensemble.serving.loading import load_serving_ensemble, load_with_smoke_rows
    from stream_ensemble.serving.versions import parse_tag, smoke_problem

    target = deploys.target()
    if target:
        try:
            name, version = parse_tag(target)
            ens, rows = load_with_smoke_rows(reg, name, version)
            reason = smoke_problem(ens, rows)
        except Exception as exc:  # refused like a hot deploy: fall back, do not crash
            reason = f"cannot load: {exc}"
        if reason is None:
            return ens
        log.warning("deploy %s refused at start: %s", target, reason,
                    extra={"event": "deploy_refused", "version": target, "reason": reason})
        deploys.refused(target, reason)
    return load_serving_ensemble(reg, fleet, pinned)
