"""``stream-ensemble health``: operators mark members up or down in Redis."""

from __future__ import annotations

import click

from stream_ensemble.cli.common import config_from, setting_option


@click.group()
def health() -> None:
    """Mark members up or down in Redis (seen by workers within 2 s)."""


@health.command("set")
@click.argument("member")
@click.argument("state", type=click.Choice(["up", "down"]))
@setting_option("redis.url", "--redis", "redis_url")
@click.pass_context
def health_set(ctx: click.Context, member: str, state: str, redis_url: str | None) -> None:
    """Set MEMBER (name or name@vN) to STATE."""
    from stream_ensemble.adapters.redis_store import RedisHealthStore, connect

    cfg = config_from(ctx, redis__url=redis_url)
    RedisHealthStore(connect(cfg.redis), cfg.redis.key_prefix).set(member, state)
    click.echo(f"{member} -> {state}")


@health.command("list")
@setting_option("redis.url", "--redis", "redis_url")
@click.pass_context
def health_list(ctx: click.Context, redis_url: str | None) -> None:
    """Show every member state set in Redis."""
    from stream_ensemble.adapters.redis_store import RedisHealthStore, connect

    cfg = config_from(ctx, redis__url=redis_url)
    states = RedisHealthStore(connect(cfg.redis), cfg.redis.key_prefix).all()
    for k in sorted(states):
        click.echo(f"{k}\t{states[k]}")
    if not states:
        click.echo("(no member marked; all up)")
