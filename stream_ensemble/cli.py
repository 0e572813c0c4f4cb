"""The ``stream-ensemble`` command line (the only composition root besides tests).

Exit codes: 0 success, 1 runtime failure (server unreachable, lost events...), 2 bad usage
or configuration. Errors print one line on stderr, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from stream_ensemble.errors import ConfigError, StreamEnsembleError

log = logging.getLogger("stream_ensemble")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (structured logs for machines and humans with jq)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr in ``json`` or ``text`` format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Group(click.Group):
    """Turns project errors into one clear line and the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except StreamEnsembleError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # third-party failures: still one line (--debug for the traceback)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)


def _pin_threads() -> None:
    # Library-default OpenMP/BLAS threading swings timings 10x on small machines; one
    # thread per process, scale with processes in the consumer group.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True)
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]), show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="stream-ensemble")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str, debug: bool) -> None:
    """Serve a selected, calibrated ensemble of many models on a Kafka stream."""
    ctx.obj = {"debug": debug}
    setup_logging(log_level, log_format)


# ---------------------------------------------------------------------------- train
@main.command()
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), default=Path("var/registry"), show_default=True, envvar="SE_REGISTRY", help="Registry directory.")
@click.option("--ensemble", default="default", show_default=True, help="Ensemble name in the registry.")
@click.option("--dataset", default="breast_cancer", show_default=True, help="Bundled scikit-learn dataset (used unless --csv).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Train on this CSV instead.")
@click.option("--label", help="Label column of --csv.")
@click.option("--positive", help="Positive class value of --label (default: the rarer value).")
@click.option("--no-header", is_flag=True, help="The CSV has no header row (columns are c0, c1, ...).")
@click.option("--pool", default="default", show_default=True, type=click.Choice(["default", "large"]), help="Pool recipe (core/zoo.py).")
@click.option("--pool-size", default=120, show_default=True, type=click.IntRange(2, 1000), help="Members for --pool large.")
@click.option("--strategy", default=None, help="Ensemble strategy (default: the benchmark's winner).")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True), default=None, help="Latency budget: total member cost, ms per 1,000 rows.")
@click.option("--max-members", type=click.IntRange(1, 1000), default=None, help="At most this many members in the selection.")
@click.option("--seed", default=0, show_default=True, type=int)
def train(registry: Path, ensemble: str, dataset: str, csv_path: Path | None, label: str | None,
          positive: str | None, no_header: bool, pool: str, pool_size: int, strategy: str | None,
          budget_ms: float | None, max_members: int | None, seed: int) -> None:
    """Train a model pool and an ensemble; write new registry versions."""
    from tqdm import tqdm

    from stream_ensemble.core import data as datamod
    from stream_ensemble.core.builder import BuildConfig
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training import train as run_train
    from stream_ensemble.core.zoo import make_pool

    _pin_threads()
    if csv_path is not None:
        if not label:
            raise click.UsageError("--csv needs --label COLUMN")
        ds = datamod.load_csv(csv_path, label, positive, header=not no_header)
    else:
        if label or positive:
            raise click.UsageError("--label/--positive only apply with --csv")
        ds = datamod.load_bundled(dataset)
    specs = make_pool(pool, random_state=seed, **({"n_models": pool_size} if pool == "large" else {}))
    config = _build_config(BuildConfig, strategy, budget_ms, max_members, seed)
    click.echo(f"training {len(specs)} members on {ds.name}: {ds.n_rows} rows, "
               f"{len(ds.numeric)} numeric + {len(ds.categorical)} categorical features", err=True)
    bar = tqdm(total=None, desc="train", unit="step", file=sys.stderr, leave=False)
    def progress(msg: str) -> None:
        bar.update(1)
        bar.set_postfix_str(msg[:60])
    t0 = time.perf_counter()
    result = run_train(ds, specs, Registry(registry), ensemble_name=ensemble, build_config=config,
                       random_state=seed, progress=progress)
    bar.close()
    click.echo(f"\nensemble {result.ensemble}@v{result.version}  strategy={result.strategy}  "
               f"({time.perf_counter() - t0:.1f}s, {result.holdout_rows} holdout rows kept for the demo)")
    click.echo(f"{'member':<16}{'version':>8}{'family':>15}{'val log loss':>14}{'val acc':>9}{'ms/1k rows':>12}")
    for m in result.members:
        met = m["metrics"]
        click.echo(f"{m['name']:<16}{'v' + str(m['version']):>8}{m['family']:>15}"
                   f"{met.get('log_loss', float('nan')):>14.4f}{met.get('accuracy', float('nan')):>9.3f}"
                   f"{m['cost_ms_per_1k']:>12.2f}")


def _build_config(cls: Any, strategy: str | None, budget_ms: float | None, max_members: int | None, seed: int) -> Any:
    import dataclasses

    config = cls(random_state=seed)
    changes: dict[str, Any] = {}
    if strategy:
        changes["strategy"] = strategy
    if budget_ms is not None or max_members is not None:
        c = config.constraints
        changes["constraints"] = dataclasses.replace(
            c, **({"budget": budget_ms} if budget_ms is not None else {}),
            **({"max_members": max_members} if max_members is not None else {}),
        )
    return dataclasses.replace(config, **changes) if changes else config


# ---------------------------------------------------------------------------- serve
@main.command()
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--redis", "redis_url", envvar="SE_REDIS_URL", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), envvar="SE_REGISTRY", default=Path("var/registry"), show_default=True)
@click.option("--ensemble", envvar="SE_ENSEMBLE", default="default", show_default=True)
@click.option("--ensemble-version", type=click.IntRange(min=1), default=None, help="Serve this version (default: latest).")
@click.option("--group", "group_id", envvar="SE_GROUP_ID", default="stream-ensemble", show_default=True)
@click.option("--features-topic", default="features", show_default=True)
@click.option("--scores-topic", default="scores", show_default=True)
@click.option("--dlq-topic", default="features.dlq", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--max-wait-ms", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Longest wait to fill a batch (latency vs batch size).")
@click.option("--cache-ttl", type=click.IntRange(min=0), default=3600, show_default=True, help="Prediction cache TTL seconds (0 disables).")
@click.option("--explain", type=click.Choice(["none", "summary", "full"]), default="summary", show_default=True)
@click.option("--partitions", type=click.IntRange(1, 1000), default=4, show_default=True, help="Partitions when creating missing topics.")
@click.option("--max-idle", type=float, default=None, help="Exit after this many idle seconds (default: run until SIGTERM).")
def serve(bootstrap: str, redis_url: str, registry: Path, ensemble: str, ensemble_version: int | None,
          group_id: str, features_topic: str, scores_topic: str, dlq_topic: str, batch_size: int,
          max_wait_ms: int, cache_ttl: int, explain: str, partitions: int, max_idle: float | None) -> None:
    """Consume feature events, score them, produce scored events (until SIGTERM)."""
    from stream_ensemble.adapters.kafka import KafkaSink, KafkaSource, ensure_topics
    from stream_ensemble.adapters.redis_store import RedisCache, RedisHealthStore, connect
    from stream_ensemble.config import load_config
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training import load_serving_ensemble
    from stream_ensemble.engine import ScoringService
    from stream_ensemble.worker import Worker

    _pin_threads()
    cfg = load_config(
        kafka__bootstrap=bootstrap, kafka__group_id=group_id, kafka__features_topic=features_topic,
        kafka__scores_topic=scores_topic, kafka__dlq_topic=dlq_topic, kafka__batch_size=batch_size,
        kafka__poll_timeout_s=max_wait_ms / 1000.0, redis__url=redis_url, redis__cache_ttl_s=cache_ttl, worker__registry=registry,
        worker__ensemble=ensemble, worker__explain=explain,
    )
    ens = load_serving_ensemble(Registry(cfg.worker.registry), cfg.worker.ensemble, ensemble_version)
    client = connect(cfg.redis)
    ensure_topics(cfg.kafka.bootstrap, [(cfg.kafka.features_topic, partitions), (cfg.kafka.scores_topic, partitions), (cfg.kafka.dlq_topic, 1)])
    service = ScoringService(
        ens, RedisHealthStore(client, cfg.redis.key_prefix, cfg.redis.health_refresh_s),
        RedisCache(client), cfg.redis.cache_ttl_s, cfg.worker.explain, cfg.redis.key_prefix,
    )
    source = KafkaSource(cfg.kafka)
    sink = KafkaSink(cfg.kafka)
    worker = Worker(source, sink, service, cfg.kafka)
    worker.install_signal_handlers()
    log.info("serving %s (%d members, strategy %s) from %s to %s", ens.tag, len(ens.pool), ens.strategy.name,
             cfg.kafka.features_topic, cfg.kafka.scores_topic)
    try:
        worker.run(max_idle_s=max_idle)
    finally:
        source.close()


# ---------------------------------------------------------------------------- topics
@main.command("topics")
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--partitions", type=click.IntRange(1, 1000), default=4, show_default=True)
def topics(bootstrap: str, partitions: int) -> None:
    """Create the features, scores, features.dlq and outcomes topics if missing."""
    from stream_ensemble.adapters.kafka import ensure_topics

    ensure_topics(bootstrap, [("features", partitions), ("scores", partitions), ("features.dlq", 1), ("outcomes", partitions)])
    click.echo("topics ready: features, scores, features.dlq, outcomes")


# ---------------------------------------------------------------------------- health
@main.group()
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


# ---------------------------------------------------------------------------- demo
@main.command()
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


@main.command("produce-demo")
@click.option("--bootstrap", envvar="SE_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), envvar="SE_REGISTRY", default=Path("var/registry"), show_default=True)
@click.option("--events", type=click.IntRange(1, 10_000_000), default=3000, show_default=True)
@click.option("--malformed", type=click.IntRange(0, 10_000), default=12, show_default=True)
def produce_demo(bootstrap: str, registry: Path, events: int, malformed: int) -> None:
    """Publish feature events made from the ensemble's held-out rows (plus malformed ones)."""
    from stream_ensemble.demo import produce_events

    run = produce_events(bootstrap, registry, events, malformed)
    click.echo(f"produced {run.produced_valid} valid + {len(run.malformed)} malformed events (run {run.run_id})")


def _add_bench() -> None:
    try:
        from stream_ensemble.bench.cli import bench
    except ImportError:  # the bench extra (matplotlib, deslib) is not installed
        return
    main.add_command(bench)


_add_bench()

if __name__ == "__main__":
    main()
