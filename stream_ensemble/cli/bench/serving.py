"""``stream-ensemble bench explain-cost | cache-bytes | throughput``: what serving costs, measured in the worker and through the broker."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stream_ensemble.bench.html_report import write_html
from stream_ensemble.cli.bench.common import ensure_ensemble, jsonable, throughput_data, usage_error, write_outputs
from stream_ensemble.cli.common import setting_option
from stream_ensemble.errors import ConfigError


@click.command(name="explain-cost")
@click.option("--registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry"),
              show_default=True, help="Registry with an ensemble trained on the bundled dataset (make demo's).")
@click.option("--ensemble", default="default", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True, help="Events per scored batch.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Best of this many runs.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the JSON here and the Markdown next to it (default: print the JSON).")
def explain_cost_cmd(registry: Path, ensemble: str, batch: int, repeats: int, out: Path | None) -> None:
    """Scoring time per event at each explanation level (none, summary, full), in process."""
    from stream_ensemble.bench import explain_cost
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.errors import StreamEnsembleError

    if not (registry / "ensembles" / ensemble).is_dir():
        raise usage_error(ConfigError(f"no ensemble {ensemble!r} in {registry}; run `stream-ensemble train` first"))
    try:
        result = explain_cost.run(Registry(registry), ensemble, batch, repeats)
    except StreamEnsembleError as exc:
        raise usage_error(exc) from None
    text = json.dumps(jsonable(result), indent=2)
    if out is None:
        click.echo(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    markdown = explain_cost.render_markdown(result)
    out.with_suffix(".md").write_text(markdown)
    page = write_html(markdown, [], out.with_suffix(".html"), "stream-ensemble explanation cost")
    click.echo(f"wrote {out}, {out.with_suffix('.md')}, {page}", err=True)


@click.command(name="cache-bytes")
@click.option("--events", type=click.IntRange(1, 1_000_000), default=3000, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also write the JSON here.")
@click.pass_context
def cache_bytes_cmd(ctx: click.Context, events: int, timeout: float, out: Path | None) -> None:
    """Redis bytes per cached event, from a real worker's cache (runs the demo; settings from SE_*/--config)."""
    from stream_ensemble.bench.cache_bytes import run
    from stream_ensemble.cli.common import config_from

    summary = run(config_from(ctx), events, timeout)
    line = json.dumps(summary)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(line + "\n")
    click.echo(line)


@click.command(name="throughput")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown, PNG and HTML report are written next to it.")
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@click.option("--registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry"),
              show_default=True, help="Registry of the default-pool ensemble (trained on --data when empty).")
@click.option("--large-registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry-large"),
              show_default=True, help="Registry of the 120-member large-pool ensemble (trained on --data when empty).")
@click.option("--data", default="breast_cancer", show_default=True,
              help="Rows the events are built from: a bundled dataset name or a CSV path (with --label).")
@click.option("--label", default=None, help="Label column of a --data CSV.")
@click.option("--events", type=click.IntRange(1000, 10_000_000), default=50_000, show_default=True,
              help="Distinct events per maximum-rate run.")
@click.option("--naive-events", type=click.IntRange(10, 1_000_000), default=400, show_default=True,
              help="Events of the naive run (it scores ~50 events/s).")
@click.option("--large-events", type=click.IntRange(100, 10_000_000), default=20_000, show_default=True,
              help="Events of the large-pool run.")
@click.option("--processes", default="1,2,4", show_default=True, help="Worker processes in one group, comma-separated.")
@click.option("--rounds", type=click.IntRange(1, 20), default=2, show_default=True, help="Interleaved rounds.")
@click.option("--partitions", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Partitions of the fresh topics (at least the most processes).")
@click.option("--sustained-rate", type=click.FloatRange(min=1), default=None,
              help="Offered events/s of the sustained run (default: half the measured one-process maximum).")
@click.option("--sustained-s", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="Duration of the sustained run, seconds.")
@click.option("--stall-s", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Give a run up after this many seconds without a new output (the rest counts as lost).")
@click.pass_context
def throughput_cmd(ctx: click.Context, out: Path, bootstrap: str | None, redis_url: str | None, registry: Path,
                   large_registry: Path, data: str, label: str | None, events: int, naive_events: int,
                   large_events: int, processes: str, rounds: int, partitions: int, sustained_rate: float | None,
                   sustained_s: float, stall_s: float) -> None:
    """Events/s and latency through the real broker and Redis: pass-through, naive, stream-ensemble
    with 1/2/4 processes, the large pool, and a sustained run at a fixed offered rate."""
    from stream_ensemble.bench import throughput, throughput_report
    from stream_ensemble.cli.common import config_from
    from stream_ensemble.errors import StreamEnsembleError

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, redis__url=redis_url)
    try:
        procs = tuple(sorted({int(p) for p in processes.split(",") if p.strip()}))
    except ValueError:
        raise usage_error(ConfigError(f"--processes must be comma-separated integers, got {processes!r}")) from None
    if not procs or procs[0] < 1 or 1 not in procs:
        raise usage_error(ConfigError("--processes must include 1 (the other runs are compared with it)"))
    if procs[-1] > partitions:
        raise usage_error(ConfigError(f"--partitions {partitions} is fewer than the {procs[-1]} processes"))
    try:
        ds = throughput_data(data, label)
        for reg, pool in ((registry, "default"), (large_registry, "large")):
            ensure_ensemble(reg, pool, data, label, ds.name)
        from stream_ensemble.adapters.kafka import ensure_topics

        ensure_topics(cfg.kafka, [])  # one clear line when the broker is unreachable
    except StreamEnsembleError as exc:
        raise usage_error(exc) from None
    tcfg = throughput.ThroughputConfig(
        bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, large_registry=large_registry,
        records=ds.records(), work_dir=out.parent / f"{out.stem}-logs", events=events, naive_events=naive_events,
        large_events=large_events, processes=procs, rounds=rounds, partitions=partitions,
        sustained_rate=sustained_rate, sustained_s=sustained_s, stall_s=stall_s,
        log=lambda m: click.echo(m, err=True),
    )  # fmt: skip
    result = throughput.run(tcfg)
    write_outputs(out, result, throughput_report.render_markdown(result), throughput_report.render_png, "stream-ensemble throughput")
    click.echo(throughput_report.summary_line(jsonable(result)))
