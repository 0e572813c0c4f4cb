"""``stream-ensemble demo`` and ``produce-demo``: the end-to-end demo on the real servers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import orjson

from stream_ensemble.cli.common import config_from, setting_option


@click.command()
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("worker.registry")
@setting_option("kafka.features_topic")
@setting_option("kafka.scores_topic")
@setting_option("kafka.dlq_topic")
@setting_option("kafka.group_id", "group_id")
@click.option("--events", type=click.IntRange(1, 10_000_000), default=3000, show_default=True)
@click.option("--malformed", type=click.IntRange(0, 10_000), default=12, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True, help="Seconds to wait for all scores.")
@click.option("--retrain/--no-retrain", default=False, show_default=True, help="Train even if the registry has an ensemble.")
@click.pass_context
def demo(ctx: click.Context, bootstrap: str | None, redis_url: str | None, registry: Path | None, features_topic: str | None,
         scores_topic: str | None, dlq_topic: str | None, group_id: str | None, events: int, malformed: int,
         timeout: float, retrain: bool) -> None:
    """End to end: train if needed, start a worker, publish held-out events, check every score."""
    from stream_ensemble.demo import run_demo

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, redis__url=redis_url, worker__registry=registry,
                      kafka__features_topic=features_topic, kafka__scores_topic=scores_topic,
                      kafka__dlq_topic=dlq_topic, kafka__group_id=group_id)
    config_file = ctx.find_root().obj.get("config")
    if config_file is not None:  # the demo's worker process reads the same file
        os.environ["SE_CONFIG"] = str(config_file)
    summary = run_demo(cfg.kafka.bootstrap, cfg.redis.url, cfg.worker.registry, events, malformed, timeout, retrain, cfg.kafka)
    click.echo(orjson.dumps(summary).decode())
    sys.exit(0 if summary["lost"] == 0 else 1)


@click.command("produce-demo")
@setting_option("kafka.bootstrap")
@setting_option("worker.registry")
@setting_option("kafka.features_topic")
@click.option("--events", type=click.IntRange(1, 10_000_000), default=3000, show_default=True)
@click.option("--malformed", type=click.IntRange(0, 10_000), default=12, show_default=True)
@click.pass_context
def produce_demo(ctx: click.Context, bootstrap: str | None, registry: Path | None, features_topic: str | None,
                 events: int, malformed: int) -> None:
    """Publish feature events made from the ensemble's held-out rows (plus malformed ones)."""
    from stream_ensemble.demo import produce_events

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, worker__registry=registry, kafka__features_topic=features_topic)
    run = produce_events(cfg.kafka.bootstrap, cfg.worker.registry, events, malformed, cfg.kafka.features_topic, cfg.kafka)
    click.echo(f"produced {run.produced_valid} valid + {len(run.malformed)} malformed events (run {run.run_id})")
