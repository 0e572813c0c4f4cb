"""``stream-ensemble deploy NAME@vN | status | rollback``: which version a fleet serves, hot.

Deploying writes ``se:deploy:<ensemble>`` and a history entry (who / when / why); every
worker of that ensemble sees it within ``--deploy-poll-s`` (default 0.5 s), loads and
validates the version off the scoring path and swaps it in between batches.
"""

from __future__ import annotations

import getpass
import socket
import time
from pathlib import Path
from typing import Any

import click
import orjson

from stream_ensemble.cli.common import config_from, setting_option
from stream_ensemble.errors import ConfigError


class _DeployGroup(click.Group):
    """``deploy NAME@vN`` is short for ``deploy to NAME@vN``; ``status`` / ``rollback`` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not any(a in self.commands for a in args) and not any(a in ("-h", "--help") for a in args):
            args = ["to", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DeployGroup)
def deploy() -> None:
    """Deploy an ensemble version to its fleet without a restart (NAME@vN), see `status`, `rollback`.

    \b
    stream-ensemble deploy default@v3 --why "retrained on May data"
    stream-ensemble deploy status default
    stream-ensemble deploy rollback default --why "calibration drift"
    """


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _store(ctx: click.Context, redis_url: str | None, fleet: str) -> tuple[Any, Any]:
    from stream_ensemble.adapters.deploy_store import RedisDeployStore
    from stream_ensemble.adapters.redis_store import connect

    cfg = config_from(ctx, redis__url=redis_url)
    client = connect(cfg.redis)
    return RedisDeployStore(client, cfg.redis.key_prefix, fleet), client


def _check(registry: Path, tag: str) -> None:
    """Refuse (exit 2) a version that is missing, fails integrity or fails the smoke score."""
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.serving.loading import load_with_smoke_rows
    from stream_ensemble.serving.versions import parse_tag, smoke_problem

    name, version = parse_tag(tag)
    reg = Registry(registry)
    if version not in reg.versions("ensembles", name):
        have = ", ".join(f"{name}@v{v}" for v in reg.versions("ensembles", name)) or "none"
        raise ConfigError(f"no ensemble {tag} in registry {registry} (versions: {have})")
    try:
        ens, rows = load_with_smoke_rows(reg, name, version)
    except Exception as exc:
        raise ConfigError(f"{tag} does not load: {exc} (--force deploys it anyway; workers will refuse it)") from None
    problem = smoke_problem(ens, rows)
    if problem:
        raise ConfigError(f"{tag} fails validation: {problem} (--force deploys it anyway; workers will refuse it)")


@deploy.command("to", hidden=True)
@click.argument("tag", metavar="NAME@vN")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("worker.registry")
@click.option("--fleet", default=None, help="Ensemble name the workers serve (--ensemble of serve). Default: NAME.")
@click.option("--who", default=None, help="Who deploys (default: user@host).")
@click.option("--why", default="", help="Why (kept in the history).")
@click.option("--force", is_flag=True, help="Deploy without checking the version here first (workers still validate it).")
@click.option("--json", "as_json", is_flag=True, help="Print the history entry as JSON.")
@click.pass_context
def deploy_to(ctx: click.Context, tag: str, redis_url: str | None, registry: Path | None, fleet: str | None,
              who: str | None, why: str, force: bool, as_json: bool) -> None:
    """Point the fleet at NAME@vN (seen by its workers within a second)."""
    from stream_ensemble.serving.versions import parse_tag

    try:
        name, _ = parse_tag(tag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cfg = config_from(ctx, redis__url=redis_url, worker__registry=registry)
    if not force:
        _check(cfg.worker.registry, tag)
    store, _ = _store(ctx, redis_url, fleet or name)
    entry = store.deploy(tag, _who(who), why)
    if as_json:
        click.echo(orjson.dumps({"fleet": fleet or name, **entry}).decode())
    else:
        click.echo(f"{fleet or name}: {entry['previous'] or '(none)'} -> {tag}")


@deploy.command("status")
@click.argument("fleet", required=False)
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("worker.ensemble")
@click.option("--history", "n_history", type=click.IntRange(1, 200), default=10, show_default=True, help="History entries shown.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def deploy_status(ctx: click.Context, fleet: str | None, redis_url: str | None, ensemble: str | None,
                  n_history: int, as_json: bool) -> None:
    """The deployed version of FLEET (default --ensemble), what each live worker serves, history, refusals."""
    from stream_ensemble.adapters.heartbeat import read_heartbeats

    cfg = config_from(ctx, redis__url=redis_url, worker__ensemble=ensemble)
    name = fleet or cfg.worker.ensemble
    store, client = _store(ctx, redis_url, name)
    workers = [{"worker_id": d.get("worker_id"), "group": d.get("group"), "serving": d.get("ensemble")}
               for d in read_heartbeats(client, cfg.redis.key_prefix)
               if str(d.get("ensemble", "")).split("@")[0] == name or d.get("ensemble") == store.current()]
    doc = {"fleet": name, "deployed": store.current(), "workers": workers,
           "history": store.history(n_history), "refused": store.refusals()}
    if as_json:
        click.echo(orjson.dumps(doc).decode())
        return
    click.echo(f"fleet     {name}")
    click.echo(f"deployed  {doc['deployed'] or '(not set: workers serve --ensemble-version or the latest)'}")
    for w in workers:
        click.echo(f"worker    {w['worker_id']} (group {w['group']}) serves {w['serving']}")
    if not workers:
        click.echo("worker    (no live worker heartbeat)")
    for e in doc["history"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(e["when"])))
        click.echo(f"history   {when}Z {e['action']:<8} {e['previous'] or '(none)'} -> {e['version']} by {e['who']}"
                   + (f": {e['why']}" if e.get("why") else ""))
    for tag, r in sorted(doc["refused"].items()):
        click.echo(f"refused   {tag} by {r.get('worker')}: {r.get('reason')}")


@deploy.command("rollback")
@click.argument("fleet", required=False)
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("worker.ensemble")
@click.option("--who", default=None, help="Who rolls back (default: user@host).")
@click.option("--why", default="", help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True, help="Print the history entry as JSON.")
@click.pass_context
def deploy_rollback(ctx: click.Context, fleet: str | None, redis_url: str | None, ensemble: str | None,
                    who: str | None, why: str, as_json: bool) -> None:
    """Serve the version deployed before the current one on FLEET (default --ensemble)."""
    cfg = config_from(ctx, redis__url=redis_url, worker__ensemble=ensemble)
    name = fleet or cfg.worker.ensemble
    store, _ = _store(ctx, redis_url, name)
    target = store.rollback_target()
    if target is None:
        raise ConfigError(f"{name}: nothing to roll back to (deployed: {store.current() or 'none'}; "
                          "no earlier deploy in the history)")
    entry = store.deploy(target, _who(who), why, action="rollback")
    if as_json:
        click.echo(orjson.dumps({"fleet": name, **entry}).decode())
    else:
        click.echo(f"{name}: {entry['previous']} -> {target} (rollback)")
