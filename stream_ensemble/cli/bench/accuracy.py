"""``stream-ensemble bench accuracy``: every strategy next to the baselines on real datasets."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import click

from stream_ensemble.bench.html_report import write_html
from stream_ensemble.cli.bench.common import TqdmHandler, jsonable, split_list, usage_error
from stream_ensemble.errors import ConfigError


@click.command(name="accuracy")
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
        handler = TqdmHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger = logging.getLogger("stream_ensemble.bench")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the main CLI may log to stderr too: one line per message
    try:
        loaders = _loaders(datasets, data_dir, dataset_names, max_rows, csv_path, label, positive, no_header, seed)
        strategies = split_list(strategy_names)
        config = accuracy.BenchConfig(
            splits=splits, random_state=seed, baselines=not no_baselines,
            min_test_rows=min_test_rows or 0, jobs=jobs,
            budget_s=math.inf if budget_s is None else budget_s,
            strategies=tuple(strategies) if strategies else None,
            pool=accuracy.pool_subset(split_list(member_names)),
            student=None if student == "none" else student,
        )
        accuracy.check_strategies(config)
    except ConfigError as exc:
        raise usage_error(exc) from None
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial_path = out.with_suffix(".partial.json")
    partial: dict[str, Any] = {}

    def save_partial(name: str, entry: dict[str, Any]) -> None:
        # A long run that dies late still leaves the finished datasets on disk.
        partial[name] = entry
        partial_path.write_text(json.dumps(jsonable({"datasets": partial}), indent=2, allow_nan=False) + "\n")

    try:
        result = accuracy.run_accuracy(loaders, config, progress=not quiet, max_rows=max_rows,
                                       on_dataset=save_partial)
    except ConfigError as exc:
        raise usage_error(exc) from None
    result["elapsed_s"] = time.perf_counter() - t0
    md = md or out.with_suffix(".md")
    png = png or out.with_suffix(".png")
    out.write_text(json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n")
    markdown = report.render_markdown(result)
    md.write_text(markdown)
    report.render_png(result, png)
    page = write_html(markdown, [png], out.with_suffix(".html"), "stream-ensemble accuracy benchmark")
    partial_path.unlink(missing_ok=True)
    click.echo(f"wrote {out}, {md}, {png}, {page} ({result['elapsed_s']:.0f} s)", err=True)
    from stream_ensemble.bench.accuracy.aggregate import summary_line

    click.echo(json.dumps(summary_line(result, str(out))))


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

    chosen = split_list(names)
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
