"""``stream-ensemble demo`` and ``produce-demo``: the end-to-end demo on the real servers."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson


@click.command()
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--redis", "redis_url", envvar="SE_REDIS_URL", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), envvar="SE_REGISTRY", default=Path("var/registry"), show_default=True)
@click.option("--events", type=click.IntRange(1, 10_000_000), default=3000, show_default=True)
@click.option("--malformed", type=click.IntRange(0, 10_000), default=12, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True, help="Seconds to wait for all scores.")
@click.option("--retrain/--no-retrain", default=False, show_default=True, help="Train even if the registry has an ensemble.")
def demo(bootstrap: str, redis_url: str, registry: Path, events: int, malformed: int, timeout: float, retrain: bool) -> None:
    """End to end: train if needed, start a worker, publish held-out events, check every score."""
    from stream_ensemble.demo import run_demo

    summary = run_demo(bootstrap, redis_url, registry, events, malformed, timeout, retrain)
    click.echo(orjson.dumps(summary).decode())
    sys.exit(0 if summary["lost"] == 0 else 1)


@click.command("produce-demo")
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), envvar="SE_REGISTRY", default=Path("var/registry"), show_default=True)
@click.option("--events", type=click.IntRange(1, 10_000_000), default=3000, show_default=True)
@click.option("--malformed", type=click.IntRange(0, 10_000), default=12, show_default=True)
def produce_demo(bootstrap: str, registry: Path, events: int, malformed: int) -> None:
    """Publish feature events made from the ensemble's held-out rows (plus malformed ones)."""
    from stream_ensemble.demo import produce_events

    run = produce_events(bootstrap, registry, events, malformed)
    click.echo(f"produced {run.produced_valid} valid + {len(run.malformed)} malformed events (run {run.run_id})")
