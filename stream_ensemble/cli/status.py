"""``stream-ensemble status``: every live worker (from its Redis heartbeat) and member health."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

from stream_ensemble.cli.common import config_from, setting_option


def _rows(workers: list[dict[str, Any]]) -> list[list[str]]:
    now = time.time()
    rows = []
    for w in workers:
        lag = sum(w.get("lag", {}).values())
        rows.append([
            w["worker_id"], w.get("group", ""), w.get("ensemble", ""), str(len(w.get("members", []))),
            ",".join(w.get("down", [])) or "-", w.get("selection_id", "")[:16] or "-",
            f"{w.get('events_per_s', 0):.0f}", str(w.get("consumed", 0)), str(lag),
            ",".join(w.get("assigned", [])) or "-", "yes" if w.get("ready") else "no", f"{now - w.get('ts', now):.0f}s",
        ])
    return rows


HEADER = ["worker", "group", "ensemble", "members", "down", "selection", "ev/s", "consumed", "lag", "partitions", "ready", "seen"]


def _snapshot(client: Any, prefix: str, group: str | None) -> dict[str, Any]:
    from stream_ensemble.adapters.heartbeat import read_heartbeats
    from stream_ensemble.adapters.redis_store import RedisHealthStore

    return {"workers": read_heartbeats(client, prefix, group), "health": RedisHealthStore(client, prefix).all()}


def _text(snap: dict[str, Any]) -> str:
    rows = _rows(snap["workers"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if not rows:
        lines.append("(no live worker: none has written a heartbeat in the last 15 s)")
    marks = snap["health"]
    lines.append("health marks: " + (", ".join(f"{k}={v}" for k, v in sorted(marks.items())) or "none (all up)"))
    return "\n".join(lines)


@click.command("status")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@click.option("--group", default=None, help="Only workers of this consumer group (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: workers and health marks.")
@click.option("--watch", is_flag=True, help="Live view, refreshed every --interval seconds (Ctrl-C to quit).")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True)
@click.pass_context
def status(ctx: click.Context, redis_url: str | None, key_prefix: str | None, group: str | None, as_json: bool,
           watch: bool, interval: float) -> None:
    """Live workers (what they serve, throughput, lag, partitions) and member health marks."""
    from stream_ensemble.adapters.redis_store import connect

    cfg = config_from(ctx, redis__url=redis_url, redis__key_prefix=key_prefix).redis
    client = connect(cfg)
    if not watch:
        snap = _snapshot(client, cfg.key_prefix, group)
        click.echo(orjson.dumps(snap).decode() if as_json else _text(snap))
        return
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    def render() -> Table:
        snap = _snapshot(client, cfg.key_prefix, group)
        table = Table(title=f"stream-ensemble workers ({time.strftime('%H:%M:%S')})", caption="health marks: " + (
            ", ".join(f"{k}={v}" for k, v in sorted(snap["health"].items())) or "none (all up)"))
        for h in HEADER:
            table.add_column(h, justify="right" if h in ("members", "ev/s", "consumed", "lag", "seen") else "left")
        for row in _rows(snap["workers"]):
            table.add_row(*row)
        return table

    console = Console()
    if not console.is_terminal:  # off a TTY: periodic plain snapshots instead of redraws
        try:
            while True:
                click.echo(_text(_snapshot(client, cfg.key_prefix, group)) + "\n")
                time.sleep(interval)
        except KeyboardInterrupt:
            return
    with Live(render(), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(render())
        except KeyboardInterrupt:
            return
