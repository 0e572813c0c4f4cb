"""The selection problem's constraints and its answer (shared by every selector)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from stream_ensemble.core.selection.objective import FloatArray, Metric, get_metric
from stream_ensemble.errors import ConfigError, SelectionError
from stream_ensemble.types import Mask, Weights


@dataclass(frozen=True)
class SelectionResult:
    """The outcome of a member selection.

    Attributes
    ----------
    mask : ndarray of shape (n_models,), bool
        Selected members.
    score : float
        Held-out metric of the combined ensemble, natural orientation.
    bound : float
        Best value any unexplored subset could still reach (natural orientation); equals
        ``score`` when ``proven_optimal``.
    nodes : int
        Subsets evaluated.
    proven_optimal : bool
        The search finished without hitting a node or time limit.
    elapsed_s : float
    cost : float
        Sum of the selected members' costs.
    diversity : float
        Mean pairwise disagreement of the selected members (module docstring).
    selection_id : str
        Short stable hash of the mask, weights and constraints (for explanations).
    weights : ndarray of shape (n_models,)
        Combination weights, summing to 1, zero outside ``mask``.
    metric : str
    method : str
    from_incumbent : bool
        Branch-and-bound found nothing better than the warm start it was given.
    """

    mask: Mask
    score: float
    bound: float
    nodes: int
    proven_optimal: bool
    elapsed_s: float
    cost: float
    diversity: float
    selection_id: str
    weights: Weights
    metric: str = Metric.LOG_LOSS.value
    method: str = "branch_and_bound"
    from_incumbent: bool = False


def selection_id(mask: Mask, weights: Weights, **constraints: object) -> str:
    """Short stable hash of a selection and the constraints it was made under.

    Parameters
    ----------
    mask : ndarray of shape (n_models,), bool
    weights : ndarray of shape (n_models,)
    **constraints
        Any ``repr``-able values (budget, max_members, metric, method...).

    Returns
    -------
    str
        12 hex characters.
    """
    h = hashlib.sha256(np.asarray(mask, dtype=bool).tobytes())
    h.update(np.round(np.asarray(weights, dtype=np.float64), 12).tobytes())
    h.update(repr(sorted(constraints.items())).encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class SelectionConstraints:
    """Constraints and search limits for a selection (validated on construction).

    Parameters
    ----------
    budget : float
        Maximum total member cost (predict seconds per 1,000 rows); ``inf`` = no limit.
    max_members : int or None
        Maximum subset size; ``None`` = no limit.
    min_diversity : float
        Diversity floor in ``[0, 1]`` (module docstring).
    metric : str
    node_limit : int
        Branch-and-bound node limit.
    time_limit_s : float
        Branch-and-bound wall-clock limit.
    n_iterations : int
        Caruana iterations (also its warm start for branch-and-bound).

    Raises
    ------
    ConfigError
        A value out of range or an unknown metric.
    """

    budget: float = float("inf")
    max_members: int | None = None
    min_diversity: float = 0.0
    metric: str = Metric.LOG_LOSS.value
    node_limit: int = 1_000_000
    time_limit_s: float = 2.0
    n_iterations: int = 50

    def __post_init__(self) -> None:
        get_metric(self.metric)
        if not (self.budget > 0 or self.budget == 0):  # rejects NaN and negatives
            raise ConfigError(f"budget must be >= 0, got {self.budget}")
        if self.max_members is not None and self.max_members < 1:
            raise ConfigError(f"max_members must be >= 1 or None, got {self.max_members}")
        if not 0.0 <= self.min_diversity <= 1.0:
            raise ConfigError(f"min_diversity must lie in [0, 1], got {self.min_diversity}")
        if self.node_limit < 1 or not self.time_limit_s > 0 or self.n_iterations < 1:
            raise ConfigError("node_limit, time_limit_s and n_iterations must be positive")


def inclusive_budget(budget: float) -> float:
    """The budget widened by float rounding, so a subset whose cost equals it stays feasible.

    Costs are summed incrementally in the search; ``budget - a - b`` can land one ulp below
    ``c`` when ``a + b + c == budget`` (found by the brute-force property test).
    """
    return float(budget) + 1e-9 * max(1.0, abs(float(budget))) if np.isfinite(budget) else float(budget)


def check_feasible_start(costs: FloatArray, allowed: Mask, budget: float, max_members: int | None) -> None:
    if max_members is not None and max_members < 1:
        raise ConfigError(f"max_members must be >= 1 or None, got {max_members}")
    if not allowed.any():
        raise SelectionError("infeasible: no member is allowed (all members unhealthy or excluded)")
    if not np.any(costs[allowed] <= budget):
        raise SelectionError(
            f"infeasible: budget {budget} is below the cheapest allowed member's cost {costs[allowed].min()}"
        )
