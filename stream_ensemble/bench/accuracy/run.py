"""Running the accuracy benchmark over datasets: splits in process or in spawned workers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from threadpoolctl import threadpool_limits

from stream_ensemble.bench.accuracy.aggregate import aggregate_dataset, summarise
from stream_ensemble.bench.accuracy.config import LL_CLIP, BenchConfig, check_strategies
from stream_ensemble.bench.accuracy.split import run_split
from stream_ensemble.core.data import Dataset, stratified_split


def _split_pool(jobs: int) -> Any:
    """A process pool for the splits, or None for ``jobs == 1``.

    ``spawn``: a fresh interpreter per worker, so no lock or BLAS thread state is inherited.
    """
    if jobs <= 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_limit_threads)


def _limit_threads() -> None:
    # One BLAS/OpenMP thread per worker process: the jobs are the parallelism.
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    threadpool_limits(1)


def run_accuracy(
    loaders: Sequence[Dataset | Callable[[], Dataset]],
    config: BenchConfig,
    *,
    progress: bool = True,
    max_rows: int | None = None,
    on_dataset: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole benchmark (module docstring) and return the JSON document.

    Parameters
    ----------
    loaders : sequence of Dataset or zero-argument callables returning one
        Callables are called one at a time, so only one dataset is in memory.
    config : BenchConfig
    progress : bool, default=True
        tqdm bar over (dataset, split) on stderr.
    max_rows : int, optional
        Stratified, seeded subsample of any larger dataset (rows used are reported).
    on_dataset : callable, optional
        Called with ``(name, entry)`` as each dataset finishes (e.g. to save partial results).

    Returns
    -------
    dict
        ``datasets``, ``summary``, ``protocol``, ``elapsed_s`` (strict-JSON-ready except for
        NaN, which the CLI turns into ``null``).

    Raises
    ------
    ConfigError
        Unknown strategy, or a dataset too small for the protocol.
    ModelPoolError
        No member could be fitted.
    """
    from stream_ensemble.bench.datasets import subsample
    from stream_ensemble.progress import progress as progress_bar

    t0 = time.perf_counter()
    strategies = check_strategies(config)
    results: dict[str, dict[str, Any]] = {}
    bar = progress_bar(len(loaders) * config.splits, "accuracy", unit="split", disable=not progress)
    pool = _split_pool(config.jobs)
    splits_run: dict[str, int] = {}
    try:
        with threadpool_limits(1):
            for loader in loaders:
                data = loader() if callable(loader) else loader
                rows_total = data.n_rows
                if max_rows is not None:
                    data = subsample(data, max_rows, config.random_state)
                n_splits = config.splits_for(len(stratified_split(data.y, config.fractions, config.random_state)[2]))
                splits_run[data.name] = n_splits
                if n_splits > config.splits:
                    # Loud, not silent: the user asked for --splits N and gets more.
                    print(f"{data.name}: {n_splits} splits instead of --splits {config.splits} "
                          f"(--min-test-rows {config.min_test_rows}: test parts must total that many rows)",
                          file=sys.stderr)
                    bar.total += n_splits - config.splits
                    bar.refresh()
                bar.set_description(f"{data.name} ({n_splits} splits)")
                splits = []
                if pool is None:
                    for r in range(n_splits):
                        splits.append(run_split(data, r, config, strategies))
                        bar.update(1)
                else:
                    futures = [pool.submit(run_split, data, r, config, strategies) for r in range(n_splits)]
                    for f in futures:  # results in split order, whatever finishes first
                        splits.append(f.result())
                        bar.update(1)
                results[data.name] = aggregate_dataset(data, rows_total, splits, config.student)
                if on_dataset is not None:
                    on_dataset(data.name, results[data.name])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()
    specs = config.pool(config.random_state)
    protocol = {
        "description": (
            f"{config.splits} repeated stratified splits per dataset (seed {config.random_state} + r"
            + (f"; more on a small dataset, until its test parts total at least {config.min_test_rows} rows"
               if config.min_test_rows else "") + "): "
            f"fit {config.fractions[0]:.0%} / calibration-validation {config.fractions[1]:.0%} / "
            f"test {config.fractions[2]:.0%}; encoder fit on the fit part; members fit with 5-fold "
            "out-of-fold predictions on the fit part; strategies fit on the OOF predictions; "
            "calibrator and conformal sets as build() fits them (see calibration_protocol); "
            "best_single = member with the lowest calibration-validation log loss; default = the strategy "
            "build() chose on the calibration part (auto); best_ensemble = lowest test log loss among the "
            "strategies (an oracle, never served); distilled = one student fit to the default's calibrated "
            "OOF probabilities on the fit part, calibrated on the calibration part; metrics on test."
        ),
        "splits": config.splits,
        "min_test_rows": config.min_test_rows,
        "splits_per_dataset": splits_run,
        "fractions": list(config.fractions),
        "random_state": config.random_state,
        "pool": [s.model_id for s in specs],
        "strategies": strategies,
        "max_rows": max_rows,
        "search_budget_s": config.budget_s,
        "student": config.student,
        "conformal_alphas": list(config.alphas),
        "selective_coverage": config.coverage,
        "log_loss_clip": LL_CLIP,
        "probabilities": "strategies: calibrated (uncalibrated in methods_uncalibrated); members and baselines: raw",
    }
    return {
        "datasets": results,
        "summary": summarise(results, f"selective_accuracy_at_{round(config.coverage * 100)}"),
        "protocol": protocol,
        "elapsed_s": time.perf_counter() - t0,
    }
