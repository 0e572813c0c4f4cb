"""``stream-ensemble topics``: create the project's topics."""

from __future__ import annotations

import click


@click.command("topics")
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--partitions", type=click.IntRange(1, 1000), default=4, show_default=True)
def topics(bootstrap: str, partitions: int) -> None:
    """Create the features, scores, features.dlq and outcomes topics if missing."""
    from stream_ensemble.adapters.kafka import ensure_topics

    ensure_topics(bootstrap, [("features", partitions), ("scores", partitions), ("features.dlq", 1), ("outcomes", partitions)])
    click.echo("topics ready: features, scores, features.dlq, outcomes")
