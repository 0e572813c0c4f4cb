"""``stream-ensemble topics``: create the project's topics, report and raise their partitions."""

from __future__ import annotations

import click

from stream_ensemble.cli.common import config_from, setting_option


@click.command("topics")
@setting_option("kafka.bootstrap")
@setting_option("kafka.partitions", type=click.IntRange(1, 1000))
@setting_option("kafka.features_topic")
@setting_option("kafka.scores_topic")
@setting_option("kafka.dlq_topic")
@click.option("--raise", "raise_", is_flag=True,
              help="Raise features, scores and outcomes to --partitions where they have fewer (Kafka only adds).")
@click.pass_context
def topics(ctx: click.Context, bootstrap: str | None, partitions: int | None, features_topic: str | None,
           scores_topic: str | None, dlq_topic: str | None, raise_: bool) -> None:
    """Create the features, scores, DLQ and outcomes topics if missing; print their partition counts."""
    from stream_ensemble.adapters.kafka import ensure_topics, raise_partitions, topic_partitions

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, kafka__partitions=partitions, kafka__features_topic=features_topic,
                      kafka__scores_topic=scores_topic, kafka__dlq_topic=dlq_topic).kafka
    wanted = {cfg.features_topic: cfg.partitions, cfg.scores_topic: cfg.partitions, cfg.dlq_topic: 1, "outcomes": cfg.partitions}
    ensure_topics(cfg, list(wanted.items()))
    if raise_:
        for topic, n in raise_partitions(cfg, {t: n for t, n in wanted.items() if t != cfg.dlq_topic}).items():
            click.echo(f"raised {topic} to {n} partitions")
    counts = topic_partitions(cfg, wanted)
    for topic, n in counts.items():
        note = ""
        if topic != cfg.dlq_topic and n < cfg.partitions:
            note = f"  (fewer than {cfg.partitions}: at most {n} workers share it; `topics --raise` adds partitions)"
        click.echo(f"{topic}\t{n} partitions{note}")
