"""Guarded member runs and degraded scores: which members a batch runs, and which rows say so.

The *healthy selection* is what the strategy runs for the members operators left up
(``se:health``). A row is **degraded** when a member of that selection has no output for it;
its ``degraded_reason`` names why (first that applies, in this order):

* ``member_timeout``: the member passed its deadline on this batch, or was still busy with an
  earlier late call;
* ``member_error``: it raised, or its output for the row was invalid (non-finite, outside
  [0, 1]);
* ``breaker_open``: its circuit breaker is open (skipped without a call);
* ``prior_only`` (overrides the others): no member at all produced an output for the row (a
  poison row every member rejects, every member down...): the score is the class prior;
* ``health_unknown`` (only when nothing else applies): the health marks could not be read
  yet (Redis down since the worker started), so the "healthy selection" is a guess.

The fallback chain (README, Faults): members skipped by their breaker or busy leave the batch
before it runs, and the strategy re-selects among the rest; a member that fails on the whole
batch triggers one re-selection without it (the extra members it picks run on the batch);
rows still without any output are scored by the best remaining single member on those rows
alone (lowest out-of-fold log loss); what is left gets the class prior at confidence 0
(``prior_only``), or the DLQ when the service is configured so. Degraded rows are never
written to the prediction cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_ensemble.core.members.guard import BREAKER_OPEN, MEMBER_ERROR, MEMBER_TIMEOUT, MemberGuard, failure_code
from stream_ensemble.core.members.pool import ModelPool, PoolRun
from stream_ensemble.types import Mask, Matrix

PRIOR_ONLY, HEALTH_UNKNOWN = "prior_only", "health_unknown"
#: ``DEGRADED_REASONS[code]`` is the reason of a row's integer code (-1: not degraded);
#: the order is the precedence when several apply.
DEGRADED_REASONS: tuple[str, ...] = (MEMBER_TIMEOUT, MEMBER_ERROR, BREAKER_OPEN, PRIOR_ONLY, HEALTH_UNKNOWN)
NOT_DEGRADED = -1


@dataclass
class GuardedRun:
    """What ran on a batch and why the rest did not.

    Attributes
    ----------
    pool_run : PoolRun
        Outputs of every member that ran (first pass and re-selection merged).
    run : ndarray of shape (n_models,), bool
        Members that were called.
    base : ndarray of shape (n_models,), bool
        The healthy selection (what would run with every healthy member working).
    missing : dict of int to str
        Member position -> reason code, for members of ``base`` skipped or failed on the
        whole batch.
    """

    pool_run: PoolRun
    run: np.ndarray
    base: np.ndarray
    missing: dict[int, str] = field(default_factory=dict)


def guarded_run(pool: ModelPool, strategy: Any, tags: list[str], X: Matrix, healthy: np.ndarray,
                guard: MemberGuard | None) -> GuardedRun:
    """Run the batch's members under the guard (see the module docstring).

    Parameters
    ----------
    pool : ModelPool
    strategy : Strategy
    tags : list of str, length n_models
    X : ndarray of shape (n_events, n_features)
    healthy : ndarray of shape (n_models,), bool
        Members operators left up.
    guard : MemberGuard or None
        None: run the healthy selection inline, nothing skipped (tests, benchmarks).
    """
    base = np.asarray(strategy.required_members(healthy), dtype=bool)
    if guard is None:
        return GuardedRun(pool.proba(X, base), base.copy(), base)
    skipped = guard.skipped(tags, healthy.tolist())
    effective = healthy.copy()
    for j, why in skipped.items():
        effective[j] = False
        if base[j]:  # a busy member missed this batch too; a breaker-open one is not called
            guard.report(tags[j], 0.0, why, count=why == MEMBER_TIMEOUT)
    run = np.asarray(strategy.required_members(effective), dtype=bool) if skipped else base.copy()
    missing = {j: why for j, why in skipped.items() if base[j]}
    pool_run = _run(pool, tags, X, run, guard, missing)
    whole = [j for j in np.flatnonzero(run) if not pool_run.ok[:, j].any()]
    if whole and X.shape[0]:
        # One re-selection without the members that failed on the whole batch.
        effective[whole] = False
        extra = np.asarray(strategy.required_members(effective), dtype=bool) & ~run if effective.any() else run & False
        if extra.any():
            second = _run(pool, tags, X, extra, guard, missing)
            _merge(pool_run, second, extra)
            run |= extra
    return GuardedRun(pool_run, run, base, missing)


def _run(pool: ModelPool, tags: list[str], X: Matrix, run: np.ndarray, guard: MemberGuard,
         missing: dict[int, str]) -> PoolRun:
    """The pool on ``run`` through the guard's threads; every outcome reported."""
    result = pool.proba(X, run, guard.deadline_s or None, guard.threaded)
    n = X.shape[0]
    for j in np.flatnonzero(run):
        name = pool.names[j]
        why = result.failed.get(name)
        whole = n > 0 and not result.ok[:, j].any()
        code = failure_code(why) if why is not None else None
        # a per-row drop is not a breaker failure, but the metrics see it
        guard.report(tags[j], result.seconds.get(name, 0.0), code if whole else None,
                     rows_reason=f"{code}_rows" if code is not None and not whole else None)
        if whole and code is not None:
            missing.setdefault(int(j), code)
    return result


def _merge(into: PoolRun, other: PoolRun, cols: np.ndarray) -> None:
    for j in np.flatnonzero(cols):
        into.proba[:, j] = other.proba[:, j]
        into.ok[:, j] = other.ok[:, j]
    into.failed.update(other.failed)
    into.timed_out |= other.timed_out
    into.seconds.update(other.seconds)
    into.failed_rows.update(other.failed_rows)


def row_reasons(g: GuardedRun, names: list[str], used: Mask) -> tuple[np.ndarray, np.ndarray]:
    """Degraded reason code of every row, shape (n_events,) int (``NOT_DEGRADED`` = -1).

    Parameters
    ----------
    g : GuardedRun
    names : list of str
        Member names in pool order.
    used : ndarray of shape (n_events, n_models), bool
        Members each row combined.

    Returns
    -------
    codes : ndarray of shape (n_events,), int
        ``prior_only`` where no member was used, else the first missing member's reason.
    missed : ndarray of shape (n_events,), int
        The same without the ``prior_only`` override (why the healthy selection missed a row).
    """
    n = used.shape[0]
    codes = np.full(n, len(DEGRADED_REASONS), dtype=np.int64)  # sentinel: above every code
    ok = g.pool_run.ok
    for j in np.flatnonzero(g.base):
        lacking = ~ok[:, j]
        if not lacking.any():
            continue
        why = g.missing.get(int(j))
        if why is None:  # per-row drop, or ran but no output for these rows
            failed = g.pool_run.failed.get(names[j], "failed")
            why = failure_code(failed)
        codes[lacking] = np.minimum(codes[lacking], DEGRADED_REASONS.index(why))
    codes[codes == len(DEGRADED_REASONS)] = NOT_DEGRADED
    missed = codes.copy()
    codes[~used.any(axis=1)] = DEGRADED_REASONS.index(PRIOR_ONLY)
    return codes, missed


def member_ranking(strategy: Any, n_models: int) -> list[int]:
    """Member positions, best single member first (out-of-fold log loss; pool order without it)."""
    planner = getattr(strategy, "planner_", None)
    P, y = getattr(planner, "P_oof", None), getattr(planner, "y", None)
    if P is None or y is None or P.shape[1] != n_models:
        return list(range(n_models))
    p_true = np.take_along_axis(np.asarray(P, dtype=np.float64), np.asarray(y)[:, None, None], axis=2)[:, :, 0]
    loss = -np.log(np.clip(p_true, 1e-15, 1.0)).mean(axis=0)
    return [int(j) for j in np.argsort(loss, kind="stable")]
