"""Settings of an accuracy run, the names of its rows, and the pool and strategies it builds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stream_ensemble.core.members.families import ModelSpec, default_pool
from stream_ensemble.errors import ConfigError

#: Metric names reported for every method, in table order.
METRIC_NAMES: tuple[str, ...] = ("log_loss", "accuracy", "roc_auc", "brier", "ece")
#: Extra method names besides members and strategies.
BEST_SINGLE = "best_single"
SKLEARN_STACKING = "sklearn_stacking"
DESLIB_KNORA_E = "deslib_knora_e"
DEFAULT = "default"
VALIDATED_STRATEGY = "validated_strategy"
#: The student distilled from the default (``core.training.distill``), one fast model.
DISTILLED = "distilled"
#: Reported relative log-loss reduction key.
REL_LL = "relative_log_loss_reduction"
LL_CLIP = 1e-15


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run.

    Attributes
    ----------
    splits : int
        Repeated stratified splits per dataset.
    fractions : tuple of float
        Fit / calibration-validation / test fractions.
    random_state : int
        Seed of split ``r`` is ``random_state + r`` (also passed to the pool and ``build``).
    strategies : tuple of str, optional
        Strategies to build; default every entry of ``STRATEGIES``.
    alphas : tuple of float
        Conformal miscoverage levels reported.
    coverage : float
        Coverage of the selective accuracy.
    pool : callable
        ``pool(random_state) -> list[ModelSpec]``; default the 8-member ``default_pool``.
    baselines : bool
        Also run scikit-learn stacking and DESlib KNORA-E.
    min_test_rows : int
        A dataset whose test part is small gets more splits, ``ceil(min_test_rows / n_test)``
        when that exceeds ``splits``: the mean coverage, ECE and selective accuracy of a
        200-row dataset over 5 splits of 40 test rows each have a standard error near the
        tolerances the goals are stated in; 0 disables.
    jobs : int
        Worker processes running the splits of a dataset in parallel (1 = in process).
    budget_s : float
        Seconds the members' hyperparameter search may start candidates in, per split
        (``BuildConfig.search_budget_s``; bounds the training time).
    student : str or None
        Student family distilled from the default per split (``lightgbm`` or ``hist_gb``;
        ``None``: no ``distilled`` row).
    """

    splits: int = 3
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    random_state: int = 0
    strategies: tuple[str, ...] | None = None
    alphas: tuple[float, ...] = (0.05, 0.1)
    coverage: float = 0.8
    pool: Callable[[int], list[ModelSpec]] = field(default=default_pool)
    baselines: bool = True
    min_test_rows: int = 0
    jobs: int = 1
    budget_s: float = math.inf
    student: str | None = "lightgbm"

    def __post_init__(self) -> None:
        from stream_ensemble.core.training.distill import STUDENTS

        if self.student is not None and self.student not in STUDENTS:
            raise ConfigError(f"--student must be one of {', '.join(STUDENTS)} or none, got {self.student!r}")
        if self.splits < 1:
            raise ConfigError(f"--splits must be >= 1, got {self.splits}")
        if self.min_test_rows < 0:
            raise ConfigError(f"--min-test-rows must be >= 0, got {self.min_test_rows}")
        if not self.budget_s >= 0:
            raise ConfigError(f"--budget-s must be >= 0, got {self.budget_s}")
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1.0) > 1e-9 or min(self.fractions) <= 0:
            raise ConfigError(f"fractions must be three positive numbers summing to 1, got {self.fractions}")
        if not all(0.0 < a < 1.0 for a in self.alphas):
            raise ConfigError(f"conformal alphas must be in (0, 1), got {self.alphas}")
        if not 0.0 < self.coverage <= 1.0:
            raise ConfigError(f"coverage must be in (0, 1], got {self.coverage}")

    def splits_for(self, n_test: int) -> int:
        """Splits to run for a dataset whose test part has ``n_test`` rows (see ``min_test_rows``)."""
        return max(self.splits, math.ceil(self.min_test_rows / max(n_test, 1)))


def pool_subset(model_ids: Sequence[str] | None) -> Callable[[int], list[ModelSpec]]:
    """A pool factory keeping only some members of the default pool.

    Parameters
    ----------
    model_ids : sequence of str or None
        Model ids to keep (``None``: the whole default pool).

    Returns
    -------
    callable
        ``pool(random_state) -> list[ModelSpec]``.

    Raises
    ------
    ConfigError
        An id not in the default pool.
    """
    if model_ids is None:
        return default_pool
    known = [s.model_id for s in default_pool(0)]
    unknown = [m for m in model_ids if m not in known]
    if unknown:
        raise ConfigError(f"unknown member(s) {', '.join(unknown)}; the default pool has: {', '.join(known)}")
    return _PoolSubset(frozenset(model_ids))


@dataclass(frozen=True)
class _PoolSubset:
    keep: frozenset[str]

    def __call__(self, random_state: int) -> list[ModelSpec]:
        return [s for s in default_pool(random_state) if s.model_id in self.keep]


def check_strategies(config: BenchConfig) -> list[str]:
    """Names of the strategies a run builds (validated).

    Parameters
    ----------
    config : BenchConfig

    Returns
    -------
    list of str
        ``config.strategies`` plus the candidates ``build`` chooses the default among (the
        ``default`` entry of every result reports the pick), or every registered strategy.

    Raises
    ------
    ConfigError
        An unknown strategy name.
    """
    from stream_ensemble.core.strategies import AUTO_CANDIDATES, STRATEGIES, parse_strategy

    if config.strategies is None:
        return [s.value for s in STRATEGIES]
    names = [parse_strategy(s).value for s in config.strategies]
    return [*names, *(c.value for c in AUTO_CANDIDATES if c.value not in names)]
