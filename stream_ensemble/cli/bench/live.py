"""``stream-ensemble bench deploy | faults``: live swaps and fault scenarios under a steady stream on the real broker and Redis."""

from __future__ import annotations

from pathlib import Path

import click

from stream_ensemble.cli.bench.common import (
    ensure_ensemble,
    jsonable,
    split_list,
    throughput_data,
    usage_error,
    write_outputs,
)
from stream_ensemble.cli.common import setting_option
from stream_ensemble.errors import ConfigError


@click.command(name="deploy")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown, PNG and HTML report are written next to it.")
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@click.option("--registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry"),
              show_default=True, help="Registry of the served ensemble (copied; trained on --data when empty).")
@click.option("--data", default="breast_cancer", show_default=True, help="Bundled dataset the events are built from.")
@click.option("--max-events", type=click.IntRange(1000, 1_000_000), default=20_000, show_default=True,
              help="Events of the burst that measures the maximum rate.")
@click.option("--rate-fraction", type=click.FloatRange(0.05, 1.0), default=0.5, show_default=True,
              help="Steady stream rate as a fraction of the measured maximum.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=5.0), default=24.0, show_default=True,
              help="Seconds of the steady stream (the four deploy actions at 20/40/60/80%).")
@click.pass_context
def deploy_cmd(ctx: click.Context, out: Path, bootstrap: str | None, redis_url: str | None, registry: Path,
               data: str, max_events: int, rate_fraction: float, duration_s: float) -> None:
    """Three live swaps (one a rollback) and one broken version under a steady stream at half the
    maximum rate, through the real broker and Redis: lost, double-scored, mixed batches, swap time, stall."""
    from stream_ensemble.bench import deploy_swap
    from stream_ensemble.cli.common import config_from
    from stream_ensemble.errors import StreamEnsembleError

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, redis__url=redis_url)
    try:
        ds = throughput_data(data, None)
        ensure_ensemble(registry, "default", data, None, ds.name)
        from stream_ensemble.adapters.kafka import ensure_topics
        from stream_ensemble.adapters.redis_store import connect

        ensure_topics(cfg.kafka, [])  # one clear line when a server is unreachable
        connect(cfg.redis)
    except StreamEnsembleError as exc:
        raise usage_error(exc) from None
    result = deploy_swap.run(deploy_swap.DeployBenchConfig(
        bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, records=ds.records(),
        work_dir=out.parent / f"{out.stem}-work", max_events=max_events, rate_fraction=rate_fraction,
        duration_s=duration_s, log=lambda m: click.echo(m, err=True)))
    write_outputs(out, result, deploy_swap.render_markdown(result), deploy_swap.render_png, "stream-ensemble deploy")
    click.echo(deploy_swap.summary_line(result))


#: The scenarios of ``bench faults`` in run order (the keys of bench.faults.scenarios.SCENARIOS).
FAULT_SCENARIOS = ("kill9_x3", "join_sigterm", "member_raises", "member_nan", "member_out_of_range", "member_sleeps",
                    "poison_mix", "redis_down_20s", "redis_restart", "broker_down_20s", "broker_down_90s",
                    "cluster_broker_killed", "soak")


@click.command(name="faults")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown, PNG and HTML report are written next to it.")
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@click.option("--registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry"),
              show_default=True, help="Registry of the served ensemble (copied for the member faults; trained on "
                                      "--data when empty).")
@click.option("--data", default="breast_cancer", show_default=True, help="Bundled dataset the events are built from.")
@click.option("--scenarios", "names", default=None,
              help="Comma-separated scenarios (default: all, in this order): " + ", ".join(FAULT_SCENARIOS) + ".")
@click.option("--rate", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Events/s of the steady producer in every scenario but the soak.")
@click.option("--soak-events", type=click.IntRange(min=100), default=1_000_000, show_default=True,
              help="Distinct events of the soak.")
@click.option("--soak-rate", type=click.FloatRange(min=1), default=1500.0, show_default=True,
              help="Events/s of the soak's producer.")
@click.option("--soak-guard-mb", type=click.FloatRange(min=1), default=1024.0, show_default=True,
              help="Stop the soak's producer when a Redis without maxmemory passes this (protects the machine).")
@click.option("--partitions", type=click.IntRange(1, 64), default=3, show_default=True,
              help="Partitions of the fresh topics.")
@click.option("--own-kafka-port", type=click.IntRange(1024, 65000), default=None,
              help="Client port of the broker the outage scenarios start and stop (default: --bootstrap's + 200).")
@click.option("--own-redis-port", type=click.IntRange(1024, 65000), default=None,
              help="Port of the Redis the Redis scenarios and the soak start and stop (default: --redis's + 30).")
@click.option("--cluster-port", type=click.IntRange(1024, 65000), default=None, envvar="KAFKA_CLUSTER_PORT",
              help="First port of the 3-node cluster (ops/kafka-cluster.sh; default: --bootstrap's + 100).")
@click.option("--time-scale", type=click.FloatRange(0.05, 10), default=1.0, show_default=True,
              help="Multiply every scenario's durations (the short integration test uses 0.3).")
@click.pass_context
def faults_cmd(ctx: click.Context, out: Path, bootstrap: str | None, redis_url: str | None, registry: Path, data: str,
               names: str | None, rate: float, soak_events: int, soak_rate: float, soak_guard_mb: float,
               partitions: int, own_kafka_port: int | None, own_redis_port: int | None, cluster_port: int | None,
               time_scale: float) -> None:
    """Each fault scenario under a steady stream through the real broker and Redis, counted by
    event_id by an independent collector: kill -9, join + SIGTERM, broker and Redis outages, a
    Redis restart, failing members, a poison mix, a soak and one broker of three killed."""
    from stream_ensemble.bench import faults
    from stream_ensemble.bench.faults import report
    from stream_ensemble.bench.faults.harness import BenchEnv
    from stream_ensemble.bench.faults.scenarios import Context
    from stream_ensemble.bench.faults.servers import OwnServers
    from stream_ensemble.cli.common import config_from
    from stream_ensemble.errors import StreamEnsembleError

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, redis__url=redis_url)
    chosen = split_list(names) or list(FAULT_SCENARIOS)
    unknown = [n for n in chosen if n not in FAULT_SCENARIOS]
    if unknown:
        raise usage_error(ConfigError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(FAULT_SCENARIOS)}"))
    kport = int(cfg.kafka.bootstrap.split(",")[0].rsplit(":", 1)[1])
    rport = int(cfg.redis.url.rsplit(":", 1)[1].split("/")[0]) if cfg.redis.url.count(":") >= 2 else 6379
    work = out.parent / f"{out.stem}-work"
    try:
        ds = throughput_data(data, None)
        ensure_ensemble(registry, "default", data, None, ds.name)
        from stream_ensemble.adapters.kafka import ensure_topics
        from stream_ensemble.adapters.redis_store import connect

        ensure_topics(cfg.kafka, [])  # one clear line when a server is unreachable
        connect(cfg.redis)
        servers = OwnServers(work / "servers", own_kafka_port or kport + 200, own_redis_port or rport + 30,
                             cluster_port or kport + 100)
    except (StreamEnsembleError, ValueError) as exc:
        raise usage_error(exc) from None
    env = BenchEnv(bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, records=ds.records(),
                   work_dir=work, rate=rate, partitions=partitions, time_scale=time_scale,
                   log=lambda m: click.echo(m, err=True))
    result = faults.run(Context(env, servers, soak_events=soak_events, soak_rate=soak_rate,
                                soak_guard_mb=soak_guard_mb), chosen)
    write_outputs(out, result, report.render_markdown(result), report.render_png, "stream-ensemble faults")
    click.echo(report.summary_line(jsonable(result)))
