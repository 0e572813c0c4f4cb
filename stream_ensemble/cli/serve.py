"""``stream-ensemble serve``: the scoring worker (until SIGTERM)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from stream_ensemble.cli.common import pin_threads

log = logging.getLogger("stream_ensemble")


@click.command()
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--redis", "redis_url", envvar="SE_REDIS_URL", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), envvar="SE_REGISTRY", default=Path("var/registry"), show_default=True)
@click.option("--ensemble", envvar="SE_ENSEMBLE", default="default", show_default=True)
@click.option("--ensemble-version", type=click.IntRange(min=1), default=None, help="Serve this version (default: latest).")
@click.option("--group", "group_id", envvar="SE_GROUP_ID", default="stream-ensemble", show_default=True)
@click.option("--features-topic", default="features", show_default=True)
@click.option("--scores-topic", default="scores", show_default=True)
@click.option("--dlq-topic", default="features.dlq", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--max-wait-ms", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Longest wait to fill a batch (latency vs batch size).")
@click.option("--cache-ttl", type=click.IntRange(min=0), default=3600, show_default=True, help="Prediction cache TTL seconds (0 disables).")
@click.option("--explain", type=click.Choice(["none", "summary", "full"]), default="summary", show_default=True)
@click.option("--partitions", type=click.IntRange(1, 1000), default=4, show_default=True, help="Partitions when creating missing topics.")
@click.option("--max-idle", type=float, default=None, help="Exit after this many idle seconds (default: run until SIGTERM).")
def serve(bootstrap: str, redis_url: str, registry: Path, ensemble: str, ensemble_version: int | None,
          group_id: str, features_topic: str, scores_topic: str, dlq_topic: str, batch_size: int,
          max_wait_ms: int, cache_ttl: int, explain: str, partitions: int, max_idle: float | None) -> None:
    """Consume feature events, score them, produce scored events (until SIGTERM)."""
    from stream_ensemble.adapters.kafka import KafkaSink, KafkaSource, ensure_topics
    from stream_ensemble.adapters.redis_store import RedisCache, RedisHealthStore, connect
    from stream_ensemble.config import load_config
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.serving.engine import ScoringService
    from stream_ensemble.serving.loading import load_serving_ensemble
    from stream_ensemble.worker import Worker

    pin_threads()
    cfg = load_config(
        kafka__bootstrap=bootstrap, kafka__group_id=group_id, kafka__features_topic=features_topic,
        kafka__scores_topic=scores_topic, kafka__dlq_topic=dlq_topic, kafka__batch_size=batch_size,
        kafka__poll_timeout_s=max_wait_ms / 1000.0, redis__url=redis_url, redis__cache_ttl_s=cache_ttl, worker__registry=registry,
        worker__ensemble=ensemble, worker__explain=explain,
    )
    ens = load_serving_ensemble(Registry(cfg.worker.registry), cfg.worker.ensemble, ensemble_version)
    client = connect(cfg.redis)
    ensure_topics(cfg.kafka.bootstrap, [(cfg.kafka.features_topic, partitions), (cfg.kafka.scores_topic, partitions), (cfg.kafka.dlq_topic, 1)])
    service = ScoringService(
        ens, RedisHealthStore(client, cfg.redis.key_prefix, cfg.redis.health_refresh_s),
        RedisCache(client), cfg.redis.cache_ttl_s, cfg.worker.explain, cfg.redis.key_prefix,
    )
    source = KafkaSource(cfg.kafka)
    sink = KafkaSink(cfg.kafka)
    worker = Worker(source, sink, service, cfg.kafka)
    worker.install_signal_handlers()
    log.info("serving %s (%d members, strategy %s) from %s to %s", ens.tag, len(ens.pool), ens.strategy.name,
             cfg.kafka.features_topic, cfg.kafka.scores_topic)
    try:
        worker.run(max_idle_s=max_idle)
    finally:
        source.close()
