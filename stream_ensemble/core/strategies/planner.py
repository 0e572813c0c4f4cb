"""The fitted state behind a strategy: one plan per healthy set.

Re-selection after a health change
----------------------------------
When the healthy set changes, the selection is redone among the healthy members on the stored
OOF predictions (the strategy keeps them, as float32) -- no member is retrained:

* branch-and-bound and Caruana re-select through :class:`~stream_ensemble.core.selection.SelectionCache`,
  the first time with the full constraints (all members healthy), afterwards with a short
  time limit (``reselect_time_limit_s``, default 20 ms) warm-started from the surviving part of
  the full selection, so a re-selection is never worse than dropping the unhealthy members;
* combiners that learn something (weights, stacking meta-learner, boosting, rank ECDFs) are
  refit on the stored OOF predictions of the new subset -- milliseconds to a few hundred ms on
  large data -- and memoised per selection, so each healthy set costs this once;
* the dynamic selectors re-select per region (``RegionSelector.region_masks``, memoised) or
  simply restrict their choice to healthy members (KNORA-E).

A member that is healthy but failed for some rows (exception, timeout, NaN) is only absent from
those rows (``available`` False); the combiner renormalises over the rest of the row. A row that
has none of its selected members gets the class prior of the OOF labels.

The combining methods (``used_mask``, ``predict_proba``, ``contributions``,
``effective_weights``) take only ``available``: the plan is looked up by the set of members that
produced an output in the batch (``available.any(axis=0)``). Each plan is also registered under
its own selection, so the usual flow -- ``required_members(healthy)``, run exactly those
members, combine -- lands on the very plan (selection, weights, meta-learner) chosen for
``healthy``. If a selected member produced nothing for the whole batch, the batch is combined
with the re-selection among the members that did run (memoised like any other).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedKFold

from stream_ensemble.core.combiners import Combiner, CombinerName, make_combiner
from stream_ensemble.core.selection import (
    KnoraE,
    RegionSelector,
    SelectionCache,
    SelectionConstraints,
    SelectionMethod,
    SelectionResult,
    select,
    selection_id,
)
from stream_ensemble.core.selection.cache import bytes_keyed, hex_keyed
from stream_ensemble.core.strategies.catalogue import DYNAMIC_SELECTORS, SelectorKind, StrategySpec
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class SelectFn:
    """Picklable ``allowed -> SelectionResult`` for :class:`SelectionCache`.

    The first call (all members healthy) uses the full constraints and becomes the warm start
    of every later, time-limited re-selection. A healthy set that still contains every member
    of that first selection gets the first selection back unchanged: taking away members it
    does not use cannot make a better ensemble appear, and a short re-search must not replace
    a good weighted selection by a worse uniform one. When selected members are down, the
    first selection's weights over the members left are the weighted incumbent of the search.
    """

    def __init__(self, P: npt.NDArray[np.floating[Any]], y: Labels, costs: FloatArray,
                 constraints: SelectionConstraints, method: SelectionMethod,
                 reselect_time_limit_s: float) -> None:
        self.P, self.y, self.costs, self.constraints = P, y, costs, constraints
        self.method, self.reselect_time_limit_s = method, reselect_time_limit_s
        self.base: SelectionResult | None = None

    def __call__(self, allowed: Mask) -> SelectionResult:
        base = self.base
        if base is None:
            self.base = select(self.P.astype(np.float64), self.y, costs=self.costs, constraints=self.constraints,
                               method=self.method, allowed=allowed)
            return self.base
        if not np.any(base.mask & ~allowed):
            return base
        w = np.where(allowed & base.mask, base.weights, 0.0)
        fast = replace(self.constraints, time_limit_s=self.reselect_time_limit_s)
        return select(self.P.astype(np.float64), self.y, costs=self.costs, constraints=fast, method=self.method,
                      allowed=allowed, incumbent=w / w.sum() if w.sum() > 0 else None)


@dataclass(frozen=True, eq=False)
class Plan:
    """What a strategy does for one healthy set."""

    healthy: Mask  # (m,) the healthy set it was made for
    selection: Mask  # (m,) members that may be used (union over regions for dynamic ones)
    cols: IntArray  # columns the combiner sees
    combiner: Combiner | None  # None when nothing is healthy (rows get the prior)
    selection_id: str


def _cv_log_loss(name: CombinerName, P: Proba, y: Labels, random_state: int, n_splits: int = 3) -> float:
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    losses = []
    for tr, te in folds.split(P[:, 0, :], y):
        proba = make_combiner(name).fit(P[tr], y[tr]).predict_proba(P[te])
        losses.append(-np.mean(np.log(np.clip(proba[np.arange(te.size), y[te]], 1e-15, 1.0))))
    return float(np.mean(losses))


def _member_log_loss(P: npt.NDArray[np.floating[Any]], y: Labels) -> FloatArray:
    """OOF log loss of every member, shape (n_models,)."""
    p_true = np.take_along_axis(np.asarray(P, dtype=np.float64), y[:, None, None], axis=2)[:, :, 0]
    return np.asarray(-np.log(np.clip(p_true, 1e-15, 1.0)).mean(axis=0))


def _best_member(loss: FloatArray, healthy: Mask, costs: FloatArray, budget: float) -> Mask:
    """One-hot mask of the healthy member with the lowest loss that fits the budget.

    When no healthy member fits the budget the cheapest healthy one is used (a single member
    is the least any strategy can run). Ties go to the lower index.
    """
    ok = healthy & (costs <= budget)
    if not ok.any():
        ok = healthy & (costs == costs[healthy].min())
    sel = np.zeros(loss.shape[0], dtype=bool)
    sel[int(np.argmin(np.where(ok, loss, np.inf)))] = True
    return sel


class Planner:
    """Fitted state behind a strategy: a plan per healthy set, a combiner per selection.

    Both are memoised; the OOF predictions are kept (float32) for the refits.
    """

    def __init__(self, spec: StrategySpec, P32: npt.NDArray[np.float32], y: Labels, costs: FloatArray,
                 constraints: SelectionConstraints, *, reselect_time_limit_s: float, n_regions: int,
                 knn_k: int, random_state: int, X: Matrix | None) -> None:
        self.spec, self.P_oof, self.y, self.costs, self.constraints = spec, P32, y, costs, constraints
        self.reselect_time_limit_s, self.n_regions, self.knn_k = reselect_time_limit_s, n_regions, knn_k
        self.random_state = random_state
        self.n_models = P32.shape[1]
        self.plans: dict[bytes, Plan] = {}
        self.fits: dict[str, Combiner] = {}
        self.selector = spec.selector
        self.variant_scores: dict[str, float] = {}
        self.dynamic: RegionSelector | KnoraE | None = None
        self.cache: SelectionCache | None = None
        if self.selector in DYNAMIC_SELECTORS:
            self._fit_dynamic(X)
        elif self.selector is SelectorKind.BEST:
            self.member_loss = _member_log_loss(P32, y)
        elif self.selector is not SelectorKind.ALL:
            self._fit_static()
        self.plan(np.ones(self.n_models, dtype=bool))  # the all-healthy plan now, not on the hot path

    def _fit_static(self) -> None:
        bnb = SelectionMethod.CARUANA if self.selector is SelectorKind.CARUANA else SelectionMethod.BRANCH_AND_BOUND
        fn = SelectFn(self.P_oof, self.y, self.costs, self.constraints, bnb, self.reselect_time_limit_s)
        self.cache = SelectionCache(fn)
        if self.selector is SelectorKind.ALL_OR_BNB:
            sub = self.cache.get(np.ones(self.n_models, dtype=bool)).mask
            P = self.P_oof.astype(np.float64)
            scores = {SelectorKind.ALL: _cv_log_loss(self.spec.combiner, P, self.y, self.random_state),
                      SelectorKind.BNB: _cv_log_loss(self.spec.combiner, P[:, sub], self.y, self.random_state)}
            self.variant_scores = {k.value: v for k, v in scores.items()}
            # Ties go to the B&B subset: same loss, fewer members to run.
            better_all = scores[SelectorKind.ALL] < scores[SelectorKind.BNB]
            self.selector = SelectorKind.ALL if better_all else SelectorKind.BNB

    def _fit_dynamic(self, X: Matrix | None) -> None:
        if X is None:
            raise ConfigError(f"strategy {self.spec.selector.value} needs the OOF feature matrix X")
        P = self.P_oof.astype(np.float64)
        if self.selector is SelectorKind.REGIONS:
            self.dynamic = RegionSelector(n_regions=self.n_regions, constraints=self.constraints,
                                          reselect_time_limit_s=self.reselect_time_limit_s,
                                          random_state=self.random_state).fit(X, P, self.y, self.costs)
        else:
            self.dynamic = KnoraE(k=self.knn_k).fit(X, P, self.y, self.costs)
        self.dynamic_combiner = make_combiner(self.spec.combiner).fit(P, self.y)

    def plan(self, healthy: Mask) -> Plan:
        """The (memoised) plan for a healthy set, shape (n_models,) bool."""
        key = np.ascontiguousarray(healthy).tobytes()
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self._make_plan(healthy.copy())
            # A batch where exactly the selection ran maps back to this plan (module docstring).
            self.plans.setdefault(np.ascontiguousarray(plan.selection).tobytes(), plan)
        return plan

    def _make_plan(self, h: Mask) -> Plan:
        m = self.n_models
        if not h.any():
            sid = selection_id(h, np.zeros(m), method="none")
            return Plan(h, np.zeros(m, bool), np.empty(0, np.intp), None, sid)
        if self.dynamic is not None:
            if isinstance(self.dynamic, RegionSelector):
                table = self.dynamic.region_masks(h)
                sid = selection_id(table.ravel(), np.ones(table.size), method="regions")
                return Plan(h, np.asarray(table.any(axis=0), dtype=bool), np.arange(m), self.dynamic_combiner, sid)
            sid = selection_id(h, np.ones(m), method="knora_e", k=self.knn_k)
            return Plan(h, h.copy(), np.arange(m), self.dynamic_combiner, sid)
        params: dict[str, Any] = {}
        if self.selector is SelectorKind.ALL:
            sel, sid = h.copy(), selection_id(h, h / h.sum(), method="all")
        elif self.selector is SelectorKind.BEST:
            sel = _best_member(self.member_loss, h, self.costs, self.constraints.budget)
            sid = selection_id(sel, sel.astype(np.float64), method="best")
        else:
            assert self.cache is not None
            result = self.cache.get(h)
            sel, sid = result.mask, result.selection_id
            if self.selector is SelectorKind.CARUANA:
                params["weights"] = result.weights[sel]
        cols = np.flatnonzero(sel)
        combiner = self.fits.get(sid)
        if combiner is None:
            P = self.P_oof[:, cols].astype(np.float64)
            combiner = self.fits[sid] = make_combiner(self.spec.combiner, **params).fit(P, self.y)
        return Plan(h, sel, cols, combiner, sid)

    def row_selection(self, plan: Plan, X: Matrix | None) -> Mask:
        """Per-row selection, broadcastable to (n_events, n_models)."""
        if self.dynamic is None or plan.combiner is None:
            return plan.selection[None, :]
        if X is None:
            raise ConfigError(f"strategy {self.spec.selector.value} needs the feature matrix X")
        # One-slot cache: the serving path asks for proba, used mask, contributions and
        # exclusion reasons of the same batch, and a KNORA-E neighbour search is not free.
        # Keyed by content (crc32, ~1 ms per MB), so a buffer reused in place is never stale.
        Xa = np.ascontiguousarray(X, dtype=np.float64)
        key = (Xa.shape, zlib.crc32(Xa.data))
        last = self.__dict__.get("_row_cache")
        if last is not None and last[0] == key and last[1] is plan:
            return last[2]  # type: ignore[no-any-return]
        row_sel = self.dynamic.masks(Xa, plan.healthy)
        self._row_cache = (key, plan, row_sel)
        return row_sel

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_row_cache", None)
        state["plans"] = hex_keyed(self.plans)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "plans": bytes_keyed(state.get("plans", {}))})
