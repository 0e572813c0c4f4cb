"""``stream-ensemble train``: fit a pool and an ensemble, write new registry versions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from stream_ensemble.cli.common import config_from, pin_threads, setting_option
from stream_ensemble.errors import ConfigError
from stream_ensemble.progress import progress as progress_bar


@click.command()
@setting_option("worker.registry")
@setting_option("worker.ensemble")
@click.option("--dataset", default="breast_cancer", show_default=True, help="Bundled scikit-learn dataset (used unless --csv).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Train on this CSV instead.")
@click.option("--label", help="Label column of --csv.")
@click.option("--positive", help="Positive class value of --label (default: the rarer value).")
@click.option("--no-header", is_flag=True, help="The CSV has no header row (columns are c0, c1, ...).")
@click.option("--pool", default="default", show_default=True, type=click.Choice(["default", "large"]), help="Pool recipe (core/members/families.py).")
@click.option("--pool-size", default=120, show_default=True, type=click.IntRange(2, 1000), help="Members for --pool large.")
@click.option("--strategy", default=None, help="Ensemble strategy, or 'auto' (default): the candidate with the lowest "
                                                  "calibrated log loss on the held-out calibration part.")
@click.option("--guard-z", type=click.FloatRange(min=0), default=None,
              help="With --strategy auto: serve the lowest-loss candidate only if it leads the best single member "
                   "by more than this many paired standard errors on the calibration part (default 1; 0: no guard).")
@click.option("--search-budget-s", type=click.FloatRange(min=0), default=None,
              help="Seconds the members' hyperparameter search may start candidates in (default: no limit).")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True), default=None, help="Latency budget: total member cost, ms per 1,000 rows.")
@click.option("--max-members", type=click.IntRange(1, 1000), default=None, help="At most this many members in the selection.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.pass_context
def train(ctx: click.Context, registry: Path | None, ensemble: str | None, dataset: str, csv_path: Path | None, label: str | None,
          positive: str | None, no_header: bool, pool: str, pool_size: int, strategy: str | None,
          guard_z: float | None, search_budget_s: float | None, budget_ms: float | None, max_members: int | None,
          seed: int) -> None:
    """Train a model pool and an ensemble; write new registry versions."""
    from stream_ensemble.core import data as datamod
    from stream_ensemble.core.members.families import make_pool
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.strategies import AUTO, AUTO_CANDIDATES
    from stream_ensemble.core.training import train as run_train
    from stream_ensemble.core.training.builder import BuildConfig

    pin_threads()
    worker_cfg = config_from(ctx, worker__registry=registry, worker__ensemble=ensemble).worker
    registry, ensemble = worker_cfg.registry, worker_cfg.ensemble
    if csv_path is not None:
        if not label:
            raise click.UsageError("--csv needs --label COLUMN")
        ds = datamod.load_csv(csv_path, label, positive, header=not no_header)
    else:
        if label or positive:
            raise click.UsageError("--label/--positive only apply with --csv")
        ds = datamod.load_bundled(dataset)
    specs = make_pool(pool, random_state=seed, **({"n_models": pool_size} if pool == "large" else {}))
    try:
        config = build_config(BuildConfig, strategy, budget_ms, max_members, seed, search_budget_s, guard_z)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"training {len(specs)} members on {ds.name}: {ds.n_rows} rows, "
               f"{len(ds.numeric)} numeric + {len(ds.categorical)} categorical features", err=True)
    # fit each member, fit the strategy, predict + calibrate, save each member, save the ensemble
    n_strategies = len(AUTO_CANDIDATES) if config.strategy == AUTO else 1
    steps = sum(len(s.search) for s in specs) + 2 * len(specs) + 2 * n_strategies + 2
    bar = progress_bar(steps, "train", unit="step")
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


def build_config(cls: Any, strategy: str | None, budget_ms: float | None, max_members: int | None, seed: int,
                  search_budget_s: float | None = None, guard_z: float | None = None) -> Any:
    import dataclasses

    config = cls(random_state=seed)
    changes: dict[str, Any] = {}
    if strategy:
        changes["strategy"] = strategy
    if search_budget_s is not None:
        changes["search_budget_s"] = search_budget_s
    if guard_z is not None:
        changes["guard_z"] = guard_z
    if budget_ms is not None or max_members is not None:
        c = config.constraints
        changes["constraints"] = dataclasses.replace(
            c, **({"budget": budget_ms} if budget_ms is not None else {}),
            **({"max_members": max_members} if max_members is not None else {}),
        )
    return dataclasses.replace(config, **changes) if changes else config
