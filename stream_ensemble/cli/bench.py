"""``stream-ensemble bench ...``: benchmark commands (the main CLI adds :data:`bench`).

Errors in the arguments (a missing datasets folder, an unknown dataset or strategy, a bad CSV)
print one ``Error: ...`` line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from stream_ensemble.bench.html_report import write_html
from stream_ensemble.cli.common import setting_option
from stream_ensemble.errors import ConfigError


@click.group(name="bench")
def bench() -> None:
    """Benchmarks that write JSON + Markdown (+ PNG) results."""


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


class BenchUsageError(click.ClickException):
    """A bad argument: click prints the single line ``Error: <message>`` and exits with 2.

    (``click.UsageError`` would add the usage and a help hint around it.)
    """

    exit_code = 2


def _usage_error(exc: Exception) -> BenchUsageError:
    return BenchUsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


class _TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


@bench.command(name="accuracy")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              envvar="SE_DATA_DIR", show_envvar=True,
              help="Folder with the real datasets (default: $SE_DATA_DIR, else ~/.cache/stream-ensemble/datasets; "
                   "see `stream-ensemble datasets`). Unused with --csv.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON file to write.")
@click.option("--md", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Markdown report (default: next to --out, same name, .md).")
@click.option("--png", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Bar chart of relative log-loss reduction (default: next to --out, .png).")
@click.option("--splits", type=click.IntRange(min=1), default=3, show_default=True,
              help="Repeated stratified fit 60% / calibration-validation 20% / test 20% splits.")
@click.option("--datasets", "dataset_names", default=None,
              help="Comma-separated shared dataset names (default: every one present in --data-dir): "
                   "adult, mammography, phoneme, spambase, german, pima, banknote, ionosphere, sonar, "
                   "breast-cancer-wisconsin; or the bundled scikit-learn ones (offline, no --data-dir): "
                   "wine, digits (K-class), breast_cancer.")
@click.option("--max-rows", type=click.IntRange(min=2), default=None,
              help="Stratified, seeded subsample of any dataset with more rows (bounds the runtime; "
                   "the rows used are reported).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None,
              help="Run the same protocol on this CSV alone (needs --label).")
@click.option("--label", default=None, help="Label column of --csv.")
@click.option("--positive", default=None, help="Positive class value of --csv (default: the rarer one).")
@click.option("--no-header", is_flag=True, default=False,
              help="--csv has no header row (columns are then named c0, c1, ...).")
@click.option("--strategies", "strategy_names", default=None,
              help="Comma-separated strategies to build (default: all registered).")
@click.option("--members", "member_names", default=None,
              help="Comma-separated model ids of the default pool to use (default: all 8: logreg, "
                   "random_forest, extra_trees, hist_gb, knn, naive_bayes, mlp, decision_tree).")
@click.option("--no-baselines", is_flag=True, default=False,
              help="Skip scikit-learn stacking and DESlib KNORA-E.")
@click.option("--min-test-rows", type=click.IntRange(min=0), default=None,
              help="Run more splits on a small dataset until its test parts total this many rows "
                   "(coverage, ECE and selective accuracy need them; each override is printed). "
                   "Default: exactly --splits.")
@click.option("--budget-s", type=click.FloatRange(min=0), default=None,
              help="Seconds per split the members' hyperparameter search may start candidates in "
                   "(bounds training time; default: no limit, every listed candidate is tried).")
@click.option("--student", default="lightgbm", show_default=True, type=click.Choice(["lightgbm", "hist_gb", "none"]),
              help="Student distilled from the default per split (the `distilled` row); none: skip it.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes running a dataset's splits in parallel.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of split r is seed + r.")
@click.option("--quiet", is_flag=True, default=False, help="No progress bar and no timing log.")
def accuracy_cmd(
    data_dir: Path | None, out: Path, md: Path | None, png: Path | None, splits: int,
    dataset_names: str | None, max_rows: int | None, csv_path: Path | None, label: str | None,
    positive: str | None, no_header: bool, strategy_names: str | None, member_names: str | None,
    no_baselines: bool, min_test_rows: int | None, budget_s: float | None, student: str, jobs: int,
    seed: int, quiet: bool,
) -> None:
    """Test metrics of every member, every strategy and outside baselines on real data.

    Per dataset and split: fit 60% / calibration-validation 20% / test 20% (stratified);
    members fit with out-of-fold predictions on the fit part; every strategy, calibrator and
    conformal predictor built; test log loss, accuracy, ROC AUC, Brier and ECE reported for
    every member, every strategy (calibrated), best_single (best validation log loss),
    sklearn_stacking, deslib_knora_e, the default strategy and `distilled` (one fast student fit
    to the default's OOF probabilities: its share of the default's gain over best_single and its
    cost ratio), with the relative log-loss reduction against best_single. Writes --out (JSON),
    --md and --png.
    """
    from stream_ensemble.bench import accuracy, datasets, report

    if not quiet:
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger = logging.getLogger("stream_ensemble.bench")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the main CLI may log to stderr too: one line per message
    try:
        loaders = _loaders(datasets, data_dir, dataset_names, max_rows, csv_path, label, positive, no_header, seed)
        strategies = _split_list(strategy_names)
        config = accuracy.BenchConfig(
            splits=splits, random_state=seed, baselines=not no_baselines,
            min_test_rows=min_test_rows or 0, jobs=jobs,
            budget_s=math.inf if budget_s is None else budget_s,
            strategies=tuple(strategies) if strategies else None,
            pool=accuracy.pool_subset(_split_list(member_names)),
            student=None if student == "none" else student,
        )
        accuracy.check_strategies(config)
    except ConfigError as exc:
        raise _usage_error(exc) from None
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial_path = out.with_suffix(".partial.json")
    partial: dict[str, Any] = {}

    def save_partial(name: str, entry: dict[str, Any]) -> None:
        # A long run that dies late still leaves the finished datasets on disk.
        partial[name] = entry
        partial_path.write_text(json.dumps(_jsonable({"datasets": partial}), indent=2, allow_nan=False) + "\n")

    try:
        result = accuracy.run_accuracy(loaders, config, progress=not quiet, max_rows=max_rows,
                                       on_dataset=save_partial)
    except ConfigError as exc:
        raise _usage_error(exc) from None
    result["elapsed_s"] = time.perf_counter() - t0
    md = md or out.with_suffix(".md")
    png = png or out.with_suffix(".png")
    out.write_text(json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    markdown = report.render_markdown(result)
    md.write_text(markdown)
    report.render_png(result, png)
    page = write_html(markdown, [png], out.with_suffix(".html"), "stream-ensemble accuracy benchmark")
    partial_path.unlink(missing_ok=True)
    click.echo(f"wrote {out}, {md}, {png}, {page} ({result['elapsed_s']:.0f} s)", err=True)


@bench.command(name="explain-cost")
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
        raise _usage_error(ConfigError(f"no ensemble {ensemble!r} in {registry}; run `stream-ensemble train` first"))
    try:
        result = explain_cost.run(Registry(registry), ensemble, batch, repeats)
    except StreamEnsembleError as exc:
        raise _usage_error(exc) from None
    text = json.dumps(_jsonable(result), indent=2)
    if out is None:
        click.echo(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    markdown = explain_cost.render_markdown(result)
    out.with_suffix(".md").write_text(markdown)
    page = write_html(markdown, [], out.with_suffix(".html"), "stream-ensemble explanation cost")
    click.echo(f"wrote {out}, {out.with_suffix('.md')}, {page}", err=True)


@bench.command(name="cache-bytes")
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


@bench.command(name="throughput")
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
        raise _usage_error(ConfigError(f"--processes must be comma-separated integers, got {processes!r}")) from None
    if not procs or procs[0] < 1 or 1 not in procs:
        raise _usage_error(ConfigError("--processes must include 1 (the other runs are compared with it)"))
    if procs[-1] > partitions:
        raise _usage_error(ConfigError(f"--partitions {partitions} is fewer than the {procs[-1]} processes"))
    try:
        ds = _throughput_data(data, label)
        for reg, pool in ((registry, "default"), (large_registry, "large")):
            _ensure_ensemble(reg, pool, data, label, ds.name)
        from stream_ensemble.adapters.kafka import ensure_topics

        ensure_topics(cfg.kafka, [])  # one clear line when the broker is unreachable
    except StreamEnsembleError as exc:
        raise _usage_error(exc) from None
    tcfg = throughput.ThroughputConfig(
        bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, large_registry=large_registry,
        records=ds.records(), work_dir=out.parent / f"{out.stem}-logs", events=events, naive_events=naive_events,
        large_events=large_events, processes=procs, rounds=rounds, partitions=partitions,
        sustained_rate=sustained_rate, sustained_s=sustained_s, stall_s=stall_s,
        log=lambda m: click.echo(m, err=True),
    )  # fmt: skip
    result = throughput.run(tcfg)
    _write_outputs(out, result, throughput_report.render_markdown(result), throughput_report.render_png, "stream-ensemble throughput")
    click.echo(throughput.summary_line(_jsonable(result)))


def _write_outputs(out: Path, result: dict[str, Any], markdown: str, render_png: Any, title: str) -> None:
    """``out`` (JSON), and next to it the Markdown, the PNG (``render_png(result, path)``) and the HTML page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    out.with_suffix(".md").write_text(markdown)
    render_png(result, out.with_suffix(".png"))
    page = write_html(markdown, [out.with_suffix(".png")], out.with_suffix(".html"), title)
    click.echo(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}, {page}", err=True)


def _throughput_data(data: str, label: str | None) -> Any:
    from stream_ensemble.core.data import load_csv
    from stream_ensemble.core.data.datasets import BUNDLED, load_bundled

    if data in BUNDLED:
        return load_bundled(data)
    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"--data {data!r} is neither a bundled dataset ({', '.join(BUNDLED)}) nor a CSV file")
    if label is None:
        raise ConfigError("a --data CSV needs --label (the label column)")
    return load_csv(path, label)


def _ensure_ensemble(registry: Path, pool: str, data: str, label: str | None, dataset_name: str) -> None:
    """Train the ensemble on ``data`` into an empty ``registry``; refuse one trained on other data."""
    import subprocess

    from stream_ensemble.core.registry import Registry

    reg = Registry(registry)
    if not reg.versions("ensembles", "default"):
        source = ["--dataset", data] if label is None else ["--csv", data, "--label", label]
        click.echo(f"training the {pool} pool into {registry} ...", err=True)
        proc = subprocess.run([sys.executable, "-m", "stream_ensemble", "train", "--registry", str(registry),
                               "--pool", pool, *source], check=False, stdout=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ConfigError(f"training the {pool} pool into {registry} failed ({proc.returncode})")
    trained_on = reg.manifest("ensembles", "default").get("dataset")
    if trained_on != dataset_name:
        raise ConfigError(f"{registry} holds an ensemble trained on {trained_on!r}, not {dataset_name!r}; "
                          "pass another --registry / --large-registry")


@bench.command(name="deploy")
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
        ds = _throughput_data(data, None)
        _ensure_ensemble(registry, "default", data, None, ds.name)
        from stream_ensemble.adapters.kafka import ensure_topics
        from stream_ensemble.adapters.redis_store import connect

        ensure_topics(cfg.kafka, [])  # one clear line when a server is unreachable
        connect(cfg.redis)
    except StreamEnsembleError as exc:
        raise _usage_error(exc) from None
    result = deploy_swap.run(deploy_swap.DeployBenchConfig(
        bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, records=ds.records(),
        work_dir=out.parent / f"{out.stem}-work", max_events=max_events, rate_fraction=rate_fraction,
        duration_s=duration_s, log=lambda m: click.echo(m, err=True)))
    _write_outputs(out, result, deploy_swap.render_markdown(result), deploy_swap.render_png, "stream-ensemble deploy")
    click.echo(deploy_swap.summary_line(result))


#: The scenarios of ``bench faults`` in run order (the keys of bench.faults.scenarios.SCENARIOS).
_FAULT_SCENARIOS = ("kill9_x3", "join_sigterm", "member_raises", "member_nan", "member_out_of_range", "member_sleeps",
                    "poison_mix", "redis_down_20s", "redis_restart", "broker_down_20s", "broker_down_90s",
                    "cluster_broker_killed", "soak")


@bench.command(name="faults")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown, PNG and HTML report are written next to it.")
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@click.option("--registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry"),
              show_default=True, help="Registry of the served ensemble (copied for the member faults; trained on "
                                      "--data when empty).")
@click.option("--data", default="breast_cancer", show_default=True, help="Bundled dataset the events are built from.")
@click.option("--scenarios", "names", default=None,
              help="Comma-separated scenarios (default: all, in this order): " + ", ".join(_FAULT_SCENARIOS) + ".")
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
    chosen = _split_list(names) or list(_FAULT_SCENARIOS)
    unknown = [n for n in chosen if n not in _FAULT_SCENARIOS]
    if unknown:
        raise _usage_error(ConfigError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(_FAULT_SCENARIOS)}"))
    kport = int(cfg.kafka.bootstrap.split(",")[0].rsplit(":", 1)[1])
    rport = int(cfg.redis.url.rsplit(":", 1)[1].split("/")[0]) if cfg.redis.url.count(":") >= 2 else 6379
    work = out.parent / f"{out.stem}-work"
    try:
        ds = _throughput_data(data, None)
        _ensure_ensemble(registry, "default", data, None, ds.name)
        from stream_ensemble.adapters.kafka import ensure_topics
        from stream_ensemble.adapters.redis_store import connect

        ensure_topics(cfg.kafka, [])  # one clear line when a server is unreachable
        connect(cfg.redis)
        servers = OwnServers(work / "servers", own_kafka_port or kport + 200, own_redis_port or rport + 30,
                             cluster_port or kport + 100)
    except (StreamEnsembleError, ValueError) as exc:
        raise _usage_error(exc) from None
    env = BenchEnv(bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, records=ds.records(),
                   work_dir=work, rate=rate, partitions=partitions, time_scale=time_scale,
                   log=lambda m: click.echo(m, err=True))
    result = faults.run(Context(env, servers, soak_events=soak_events, soak_rate=soak_rate,
                                soak_guard_mb=soak_guard_mb), chosen)
    _write_outputs(out, result, report.render_markdown(result), report.render_png, "stream-ensemble faults")
    click.echo(report.summary_line(_jsonable(result)))


@bench.command(name="ab-sim")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown and PNG are written next to it (.md, .png).")
@click.option("--experiments", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Simulated experiments of each kind (A/A and challenger worse).")
@click.option("--max-outcomes", type=click.IntRange(min=2), default=10_000, show_default=True,
              help="Outcomes per A/A experiment.")
@click.option("--look-every", type=click.IntRange(min=2), default=100, show_default=True,
              help="Outcomes between two looks.")
@click.option("--power-max-outcomes", type=click.IntRange(min=2), default=40_000, show_default=True,
              help="Outcomes per experiment in the power simulation.")
@click.option("--base-accuracy", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Champion accuracy.")
@click.option("--effect", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.02,
              show_default=True, help="How much less accurate the challenger is in the power simulation.")
@click.option("--challenger-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Share of outcomes from the challenger's arm.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--mixture-scale", type=click.FloatRange(0, min_open=True), default=0.05, show_default=True,
              help="Mixture SPRT tau, in standard deviations of one observation of the difference.")
@click.option("--seed", type=int, default=0, show_default=True)
def ab_sim_cmd(out: Path, experiments: int, max_outcomes: int, look_every: int, power_max_outcomes: int,
               base_accuracy: float, effect: float, challenger_fraction: float, alpha: float,
               mixture_scale: float, seed: int) -> None:
    """False positives of a peeked fixed-horizon test vs the anytime-valid test, and power.

    Offline simulation through the experiments' statistics code (no servers needed).
    """
    from stream_ensemble.bench import ab_sim

    if look_every > max_outcomes or look_every > power_max_outcomes:
        raise _usage_error(ConfigError("--look-every must not exceed --max-outcomes / --power-max-outcomes"))
    if effect >= base_accuracy:
        raise _usage_error(ConfigError("--effect must be smaller than --base-accuracy"))
    config = ab_sim.SimConfig(
        experiments=experiments, max_outcomes=max_outcomes, look_every=look_every,
        power_max_outcomes=power_max_outcomes, base_accuracy=base_accuracy, effect=effect,
        challenger_fraction=challenger_fraction, alpha=alpha, mixture_scale=mixture_scale, seed=seed,
    )  # fmt: skip
    click.echo(f"simulating {experiments} A/A and {experiments} challenger-worse experiments ...", err=True)
    result = ab_sim.run(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    out.with_suffix(".md").write_text(ab_sim.render_markdown(result))
    ab_sim.render_png(result, out.with_suffix(".png"))
    aa, power = result["aa"], result["power"]
    click.echo(f"A/A false-positive rate, {aa['looks']} looks: fixed-horizon peeked {aa['fixed_horizon_peeked_fpr']:.3f}, "
               f"anytime-valid {aa['sequential_fpr']:.3f} (alpha {alpha})")
    click.echo(f"challenger {effect:g} worse: power {power['power']:.3f} within {power_max_outcomes} outcomes "
               f"({power['power_by_10000']:.3f} by 10000), median outcomes needed {power['median_outcomes_needed']}")
    click.echo(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')} ({result['elapsed_s']:.0f} s)", err=True)


def _loaders(
    datasets: Any, data_dir: Path | None, names: str | None, max_rows: int | None,
    csv_path: Path | None, label: str | None, positive: str | None, no_header: bool, seed: int,
) -> list[Any]:
    """Zero-argument callables that load each dataset (loaded lazily, one at a time)."""
    from stream_ensemble.core.data import load_csv

    if csv_path is not None:
        if label is None:
            raise ConfigError("--csv needs --label (the label column)")
        if not csv_path.is_file():
            raise ConfigError(f"CSV file not found: {csv_path}")
        data = load_csv(csv_path, label, positive, header=not no_header)
        return [lambda: data]
    if label is not None or positive is not None:
        raise ConfigError("--label / --positive only apply with --csv")
    from stream_ensemble.core.data.datasets import BUNDLED, load_bundled

    chosen = _split_list(names)
    bundled = [n for n in (chosen or []) if n in BUNDLED]
    if chosen and len(bundled) == len(chosen):
        # Only bundled datasets: no --data-dir needed (the multiclass benchmark runs offline).
        return [lambda n=n: load_bundled(n) for n in bundled]
    if bundled:
        raise ConfigError(f"run bundled datasets ({', '.join(bundled)}) separately from the shared ones")
    folder = datasets.check_data_dir(data_dir)
    present = datasets.available(folder)
    if chosen is None:
        chosen = present
    for n in chosen:
        datasets.parse_name(n)
        if n not in present:
            raise ConfigError(f"dataset {n!r} has no files in {folder}")

    def make(n: str) -> Any:
        return lambda: datasets.load_shared(n, folder)

    return [make(n) for n in chosen]


def _jsonable(x: Any) -> Any:
    """NaN / inf -> None and numpy scalars -> Python, so the file is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
