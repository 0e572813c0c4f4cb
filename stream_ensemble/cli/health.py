"""``stream-ensemble health``: operators mark members up or down in Redis."""

from __future__ import annotations

import click


@click.group()
def health() -> None:
    """Mark members up or down in Redis (seen by workers within 2 s)."""


@health.command("set")
@click.argument("member")
@click.argument("state", type=click.Choice(["up", "down"]))
@click.option("--redis", "redis_url", envvar="SE_REDIS_URL", default="redis://127.0.0.1:6379/0", show_default=True)
def health_set(member: str, state: str, redis_url: str) -> None:
    """Set MEMBER (name or name@vN) to STATE."""
    from stream_ensemble.adapters.redis_store import RedisHealthStore, connect
    from stream_ensemble.config import load_config

    cfg = load_config(redis__url=redis_url)
    RedisHealthStore(connect(cfg.redis), cfg.redis.key_prefix).set(member, state)
    click.echo(f"{member} -> {state}")


@health.command("list")
@click.option("--redis", "redis_url", envvar="SE_REDIS_URL", default="redis://127.0.0.1:6379/0", show_default=True)
def health_list(redis_url: str) -> None:
    """Show every member state set in Redis."""
    from stream_ensemble.adapters.redis_store import RedisHealthStore, connect
    from stream_ensemble.config import load_config

    cfg = load_config(redis__url=redis_url)
    states = RedisHealthStore(connect(cfg.redis), cfg.redis.key_prefix).all()
    for k in sorted(states):
        click.echo(f"{k}\t{states[k]}")
    if not states:
        click.echo("(no member marked; all up)")
