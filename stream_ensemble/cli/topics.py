"""``stream-ensemble topics``: create the project's topics."""

from __future__ import annotations

import click

from stream_ensemble.cli.common import config_from, setting_option


@click.command("topics")
@setting_option("kafka.bootstrap")
@setting_option("kafka.partitions", type=click.IntRange(1, 1000))
@setting_option("kafka.features_topic")
@setting_option("kafka.scores_topic")
@setting_option("kafka.dlq_topic")
@click.pass_context
def topics(ctx: click.Context, bootstrap: str | None, partitions: int | None, features_topic: str | None,
           scores_topic: str | None, dlq_topic: str | None) -> None:
    """Create the features, scores, DLQ and outcomes topics if missing."""
    from stream_ensemble.adapters.kafka import ensure_topics

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, kafka__partitions=partitions, kafka__features_topic=features_topic,
                      kafka__scores_topic=scores_topic, kafka__dlq_topic=dlq_topic).kafka
    names = (cfg.features_topic, cfg.scores_topic, cfg.dlq_topic, "outcomes")
    ensure_topics(cfg, [(names[0], cfg.partitions), (names[1], cfg.partitions), (names[2], 1), (names[3], cfg.partitions)])
    click.echo(f"topics ready: {', '.join(names)}")
