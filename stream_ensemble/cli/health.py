"""``stream-ensemble health``: operators mark members up or down in Redis."""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from stream_ensemble.cli.common import config_from, setting_option
from stream_ensemble.errors import ConfigError


@click.group()
def health() -> None:
    """Mark members up or down in Redis (seen by workers within 2 s)."""


def known_members(registry: Path) -> set[str]:
    """Every member name and ``name@vN`` tag that some registered ensemble version uses."""
    from stream_ensemble.core.registry import Registry

    reg = Registry(registry)
    known: set[str] = set()
    for name in reg.names("ensembles"):
        for version in reg.versions("ensembles", name):
            for tag in reg.manifest("ensembles", name, version).get("members", []):
                known.add(tag)
                known.add(tag.split("@", 1)[0])
    return known


@health.command("set")
@click.argument("member")
@click.argument("state", type=click.Choice(["up", "down"]))
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("worker.registry")
@click.option("--force", is_flag=True, help="Set it even if no registered ensemble has this member.")
@click.pass_context
def health_set(ctx: click.Context, member: str, state: str, redis_url: str | None, registry: Path | None, force: bool) -> None:
    """Set MEMBER (name or name@vN) to STATE."""
    from stream_ensemble.adapters.redis_store import RedisHealthStore, connect

    cfg = config_from(ctx, redis__url=redis_url, worker__registry=registry)
    if not force:
        known = known_members(cfg.worker.registry)
        if member not in known:
            close = difflib.get_close_matches(member, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"no registered ensemble in {cfg.worker.registry} has member {member!r}{hint} "
                              "(--force sets it anyway)")
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
