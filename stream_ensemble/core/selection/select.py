"""``select``: one entry point over the registered selectors (registry: ``SELECTORS``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

import numpy as np

from stream_ensemble.core.selection.branch_and_bound import branch_and_bound
from stream_ensemble.core.selection.caruana import caruana
from stream_ensemble.core.selection.constraints import SelectionConstraints, SelectionResult
from stream_ensemble.core.selection.objective import FloatArray
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Proba, Weights


class SelectionMethod(str, Enum):
    """Selectors available through ``select`` (registry: ``SELECTORS``)."""

    BRANCH_AND_BOUND = "branch_and_bound"
    CARUANA = "caruana"


Selector = Callable[..., SelectionResult]


def _select_bnb(
    P: Proba, y: Labels, costs: FloatArray, c: SelectionConstraints, allowed: Mask | None, incumbent: Mask | Weights | None
) -> SelectionResult:
    t0 = time.perf_counter()
    if incumbent is None:
        # Weighted incumbent: uniform subsets must beat Caruana's weighted ensemble to replace it.
        incumbent = _select_caruana(P, y, costs, c, allowed, None).weights
    # The warm start counts against the caller's limit; 5% is kept for the search's teardown.
    time_left = max(0.95 * c.time_limit_s - (time.perf_counter() - t0), 1e-3)
    return branch_and_bound(
        P, y, costs=costs, budget=c.budget, max_members=c.max_members, min_diversity=c.min_diversity,
        allowed=allowed, metric=c.metric, node_limit=c.node_limit, time_limit_s=time_left,
        incumbent=incumbent,
    )


def _select_caruana(
    P: Proba, y: Labels, costs: FloatArray, c: SelectionConstraints, allowed: Mask | None, incumbent: Mask | Weights | None
) -> SelectionResult:
    return caruana(P, y, n_iterations=c.n_iterations, allowed=allowed, costs=costs, budget=c.budget,
                   metric=c.metric, max_members=c.max_members)


SELECTORS: dict[SelectionMethod, Callable[..., SelectionResult]] = {
    SelectionMethod.BRANCH_AND_BOUND: _select_bnb,
    SelectionMethod.CARUANA: _select_caruana,
}


def select(
    P: Proba,
    y: Labels,
    *,
    costs: FloatArray,
    constraints: SelectionConstraints | None = None,
    method: str | SelectionMethod = SelectionMethod.BRANCH_AND_BOUND,
    allowed: Mask | None = None,
    incumbent: Mask | Weights | None = None,
) -> SelectionResult:
    """Select members under ``constraints`` with a registered method.

    Branch-and-bound is warm-started from Caruana's weighted ensemble (same budget and
    ``max_members``) unless ``incumbent`` is given: it returns a uniform subset only if one
    beats that ensemble on the held-out rows, otherwise Caruana's weights. Caruana itself
    ignores ``min_diversity`` (an incumbent below the floor is dropped by branch-and-bound).

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    y : ndarray of shape (n_events,)
    costs : ndarray of shape (n_models,)
    constraints : SelectionConstraints, optional
    method : {"branch_and_bound", "caruana"}
    allowed : ndarray of shape (n_models,), bool, optional
    incumbent : ndarray of shape (n_models,), bool or float, optional
        Mask or weights to warm-start branch-and-bound with (skips the Caruana run).

    Returns
    -------
    SelectionResult

    Raises
    ------
    ConfigError
        Unknown method or metric.
    SelectionError
        Invalid inputs or infeasible constraints.
    """
    try:
        fn = SELECTORS[SelectionMethod(method)]
    except ValueError:
        raise ConfigError(f"unknown selection method {method!r}; choose one of: {', '.join(s.value for s in SelectionMethod)}") from None
    return fn(P, y, np.asarray(costs, dtype=np.float64), constraints or SelectionConstraints(), allowed, incumbent)
