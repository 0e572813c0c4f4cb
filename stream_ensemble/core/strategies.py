"""Ensemble strategies: a member selection plus a combiner, fitted on out-of-fold predictions.

A strategy is fitted once on the OOF tensor of the pool (:mod:`stream_ensemble.core.oof`) and
then served batch by batch. Serving is driven by the *healthy set* (members an operator has not
marked down): :meth:`EnsembleStrategy.required_members` says which members to run (unselected
members are never computed), :meth:`~EnsembleStrategy.used_mask` which of the outputs each row
combines, :meth:`~EnsembleStrategy.predict_proba` the combined probabilities.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.core.combiners import (
    Combiner,
    CombinerName,
    Contributions,
    IdentityLink,
    make_combiner,
)
from stream_ensemble.core.combiners._base import validate_labels, validate_proba
from stream_ensemble.core.explain import NO_EXCLUSION, ExclusionReason, exclusion_code
from stream_ensemble.core.regions import KnoraE, RegionSelector
from stream_ensemble.core.selection import (
    SelectionCache,
    SelectionConstraints,
    SelectionMethod,
    SelectionResult,
    select,
    selection_id,
)
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class StrategyName(str, Enum):
    """Registered strategies (keys of :data:`STRATEGIES`)."""

    SOFT_VOTING_ALL = "soft_voting_all"
    STACKING_ALL = "stacking_all"
    CARUANA = "caruana"
    BNB_SOFT = "bnb_soft"
    BNB_WEIGHTED = "bnb_weighted"
    BNB_STACKING = "bnb_stacking"
    BOOSTING = "boosting"
    GEOMETRIC_MEAN = "geometric_mean"
    RANK_AVERAGE = "rank_average"
    HARD_VOTING = "hard_voting"
    DYNAMIC_REGIONS = "dynamic_regions"
    KNORA_E = "knora_e"


class SelectorKind(str, Enum):
    """How a strategy picks its members."""

    ALL = "all"  # every healthy member
    CARUANA = "caruana"  # greedy with replacement; its counts become the weights
    BNB = "bnb"  # branch-and-bound subset under the constraints
    ALL_OR_BNB = "all_or_bnb"  # whichever scores better in inner CV on the OOF rows
    REGIONS = "regions"  # per-region branch-and-bound (RegionSelector)
    KNORA_E = "knora_e"  # per-row local competence (KnoraE)


_DYNAMIC = (SelectorKind.REGIONS, SelectorKind.KNORA_E)


@dataclass(frozen=True)
class StrategySpec:
    """Recipe of a strategy.

    Attributes
    ----------
    selector : SelectorKind
    combiner : CombinerName
    description : str
    """

    selector: SelectorKind
    combiner: CombinerName
    description: str


STRATEGIES: dict[StrategyName, StrategySpec] = {
    StrategyName.SOFT_VOTING_ALL: StrategySpec(
        SelectorKind.ALL, CombinerName.SOFT_VOTING, "plain mean of every member (naive baseline)"),
    StrategyName.STACKING_ALL: StrategySpec(
        SelectorKind.ALL, CombinerName.STACKING, "logistic meta-learner on every member's OOF log-odds"),
    StrategyName.CARUANA: StrategySpec(
        SelectorKind.CARUANA, CombinerName.WEIGHTED, "Caruana greedy selection, its counts as weights"),
    StrategyName.BNB_SOFT: StrategySpec(
        SelectorKind.BNB, CombinerName.SOFT_VOTING, "branch-and-bound subset, plain mean"),
    StrategyName.BNB_WEIGHTED: StrategySpec(
        SelectorKind.BNB, CombinerName.WEIGHTED, "branch-and-bound subset, non-negative weights fit on OOF"),
    StrategyName.BNB_STACKING: StrategySpec(
        SelectorKind.BNB, CombinerName.STACKING, "branch-and-bound subset, logistic meta-learner on OOF log-odds"),
    StrategyName.BOOSTING: StrategySpec(
        SelectorKind.ALL_OR_BNB, CombinerName.BOOSTING,
        "stagewise boosting of member log-odds over all members or the B&B subset (inner-CV pick)"),
    StrategyName.GEOMETRIC_MEAN: StrategySpec(
        SelectorKind.BNB, CombinerName.GEOMETRIC_MEAN, "branch-and-bound subset, geometric mean"),
    StrategyName.RANK_AVERAGE: StrategySpec(
        SelectorKind.BNB, CombinerName.RANK_AVERAGE, "branch-and-bound subset, rank average"),
    StrategyName.HARD_VOTING: StrategySpec(
        SelectorKind.BNB, CombinerName.HARD_VOTING, "branch-and-bound subset, majority vote"),
    StrategyName.DYNAMIC_REGIONS: StrategySpec(
        SelectorKind.REGIONS, CombinerName.SOFT_VOTING, "per-region branch-and-bound subsets, plain mean"),
    StrategyName.KNORA_E: StrategySpec(
        SelectorKind.KNORA_E, CombinerName.SOFT_VOTING, "KNORA-Eliminate local competence, plain mean"),
}

#: Strategy served when none is configured: the best mean relative log-loss reduction against
#: the best single member on the accuracy benchmark (ten shared datasets, 5-122 splits each:
#: boosting +20.7%, bnb_stacking +20.7%, stacking_all +20.2%, caruana +18.1%), and never more
#: than 1% worse than that member on any dataset. See the README's benchmark section.
DEFAULT_STRATEGY = StrategyName.BOOSTING


def parse_strategy(name: str | StrategyName) -> StrategyName:
    """Validate a strategy name.

    Parameters
    ----------
    name : str or StrategyName

    Returns
    -------
    StrategyName

    Raises
    ------
    ConfigError
        Unknown name (the message lists the choices).
    """
    try:
        return StrategyName(name)
    except ValueError:
        choices = ", ".join(s.value for s in StrategyName)
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {choices}") from None


class _SelectFn:
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
class _Plan:
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


class _Planner:
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
        self.plans: dict[bytes, _Plan] = {}
        self.fits: dict[str, Combiner] = {}
        self.selector = spec.selector
        self.variant_scores: dict[str, float] = {}
        self.dynamic: RegionSelector | KnoraE | None = None
        self.cache: SelectionCache | None = None
        if self.selector in _DYNAMIC:
            self._fit_dynamic(X)
        elif self.selector is not SelectorKind.ALL:
            self._fit_static()
        self.plan(np.ones(self.n_models, dtype=bool))  # the all-healthy plan now, not on the hot path

    def _fit_static(self) -> None:
        bnb = SelectionMethod.CARUANA if self.selector is SelectorKind.CARUANA else SelectionMethod.BRANCH_AND_BOUND
        fn = _SelectFn(self.P_oof, self.y, self.costs, self.constraints, bnb, self.reselect_time_limit_s)
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

    def plan(self, healthy: Mask) -> _Plan:
        """The (memoised) plan for a healthy set, shape (n_models,) bool."""
        key = np.ascontiguousarray(healthy).tobytes()
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self._make_plan(healthy.copy())
            # A batch where exactly the selection ran maps back to this plan (module docstring).
            self.plans.setdefault(np.ascontiguousarray(plan.selection).tobytes(), plan)
        return plan

    def _make_plan(self, h: Mask) -> _Plan:
        m = self.n_models
        if not h.any():
            sid = selection_id(h, np.zeros(m), method="none")
            return _Plan(h, np.zeros(m, bool), np.empty(0, np.intp), None, sid)
        if self.dynamic is not None:
            if isinstance(self.dynamic, RegionSelector):
                table = self.dynamic.region_masks(h)
                sid = selection_id(table.ravel(), np.ones(table.size), method="regions")
                return _Plan(h, np.asarray(table.any(axis=0), dtype=bool), np.arange(m), self.dynamic_combiner, sid)
            sid = selection_id(h, np.ones(m), method="knora_e", k=self.knn_k)
            return _Plan(h, h.copy(), np.arange(m), self.dynamic_combiner, sid)
        params: dict[str, Any] = {}
        if self.selector is SelectorKind.ALL:
            sel, sid = h.copy(), selection_id(h, h / h.sum(), method="all")
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
        return _Plan(h, sel, cols, combiner, sid)

    def row_selection(self, plan: _Plan, X: Matrix | None) -> Mask:
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
        return state


class EnsembleStrategy(BaseEstimator):  # type: ignore[misc]
    """A fitted member selection + combiner, served under a changing healthy set.

    Parameters
    ----------
    name : str or StrategyName, default=DEFAULT_STRATEGY
        A key of :data:`STRATEGIES`.
    member_names : sequence of str, optional
        Member ids in column order (default ``m0, m1, ...``).
    constraints : SelectionConstraints, optional
        Budget, size, diversity and search limits of the selectors.
    reselect_time_limit_s : float, default=0.02
        Branch-and-bound time limit of a re-selection after a health change.
    n_regions : int, default=8
        Regions of ``dynamic_regions``.
    knn_k : int, default=7
        Neighbourhood of ``knora_e``.
    random_state : int, default=0
        Seeds KMeans regions and the inner CV of ``boosting``.

    Attributes
    ----------
    spec_ : StrategySpec
    selector_ : SelectorKind
        The selector in use (for ``boosting``: ``all`` or ``bnb``, whichever had the lower
        3-fold CV log loss on the OOF rows; ties go to ``bnb``, the cheaper one).
    variant_scores_ : dict of str to float
        Those CV log losses (``boosting`` only).
    costs_ : ndarray of shape (n_models,)
    class_prior_ : ndarray of shape (n_classes,)
        Class frequencies of the OOF labels (served to rows without any used member).
    planner_ : _Planner
        Stored OOF predictions (float32, for refits after health changes), selection cache,
        dynamic selector and the memoised plans.
    """

    def __init__(self, name: str | StrategyName = DEFAULT_STRATEGY, member_names: Sequence[str] | None = None,
                 constraints: SelectionConstraints | None = None, reselect_time_limit_s: float = 0.02,
                 n_regions: int = 8, knn_k: int = 7, random_state: int = 0) -> None:
        self.name = name
        self.member_names = member_names
        self.constraints = constraints
        self.reselect_time_limit_s = reselect_time_limit_s
        self.n_regions = n_regions
        self.knn_k = knn_k
        self.random_state = random_state

    # ------------------------------------------------------------------------------ fit
    def fit(self, P: Proba, y: Labels, *, costs: FloatArray, X: Matrix | None = None) -> EnsembleStrategy:
        """Fit selection and combiner on out-of-fold member predictions.

        Parameters
        ----------
        P : ndarray of shape (n_oof, n_models, n_classes)
            OOF member probabilities (no NaN).
        y : ndarray of int, shape (n_oof,)
        costs : ndarray of shape (n_models,)
            Member predict cost (ms per 1,000 rows) for the budget.
        X : ndarray of shape (n_oof, n_features), optional
            Encoded features of the OOF rows; required by ``dynamic_regions`` and ``knora_e``.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            Unknown strategy, wrong ``member_names``, missing ``X`` for a dynamic strategy.
        CombinerError
            Invalid ``P`` or ``y`` (or a binary-only combiner on more classes).
        SelectionError
            Infeasible constraints.
        """
        key = parse_strategy(self.name)
        self.spec_ = STRATEGIES[key]
        clean, _ = validate_proba(P, None)
        n, m, c = clean.shape
        labels = validate_labels(y, n, c)
        cost = np.asarray(costs, dtype=np.float64)
        if cost.shape != (m,):
            raise ConfigError(f"costs has shape {cost.shape}, expected ({m},)")
        names = [f"m{j}" for j in range(m)] if self.member_names is None else list(self.member_names)
        if len(names) != m:
            raise ConfigError(f"{len(names)} member_names for {m} members")
        self.member_names_ = names
        self.n_models_, self.n_classes_ = m, c
        self.class_prior_ = np.bincount(labels, minlength=c) / n
        self.constraints_ = self.constraints or SelectionConstraints()
        self.planner_ = _Planner(self.spec_, clean.astype(np.float32), labels, cost, self.constraints_,
                                 reselect_time_limit_s=self.reselect_time_limit_s, n_regions=self.n_regions,
                                 knn_k=self.knn_k, random_state=self.random_state, X=X)
        return self

    @property
    def selector_(self) -> SelectorKind:
        """The selector in use (see the class docstring)."""
        return self.planner_.selector

    @property
    def variant_scores_(self) -> dict[str, float]:
        """Inner-CV log losses of the ``boosting`` variants (empty otherwise)."""
        return self.planner_.variant_scores

    @property
    def costs_(self) -> FloatArray:
        """Member costs the strategy was fit with, shape (n_models,)."""
        return self.planner_.costs

    def _plan(self, healthy: Mask) -> _Plan:
        return self.planner_.plan(healthy)

    # ------------------------------------------------------------------------- plans
    def _check_healthy(self, healthy: Any) -> Mask:
        check_is_fitted(self, "planner_")
        h = np.asarray(healthy)
        if h.dtype != np.bool_ or h.shape != (self.n_models_,):
            raise ConfigError(f"healthy must be a ({self.n_models_},) bool array, got {h.dtype} {h.shape}")
        return h

    def _resolve(self, available: Any, X: Matrix | None) -> tuple[_Plan, Mask, Mask]:
        """Plan, per-row selection (broadcastable to (n, m)) and used mask (n, m)."""
        check_is_fitted(self, "planner_")
        avail = np.asarray(available)
        if avail.dtype != np.bool_ or avail.ndim != 2 or avail.shape[1] != self.n_models_:
            raise ConfigError(f"available must be an (n, {self.n_models_}) bool array, got {avail.dtype} {avail.shape}")
        plan = self._plan(np.asarray(avail.any(axis=0), dtype=bool))
        row_sel = self.planner_.row_selection(plan, X)
        return plan, row_sel, avail & row_sel

    # ----------------------------------------------------------------------- serving
    def required_members(self, healthy: Mask) -> Mask:
        """Members to run for a batch, given the healthy set.

        Parameters
        ----------
        healthy : ndarray of bool, shape (n_models,)

        Returns
        -------
        ndarray of bool, shape (n_models,)
            The selection among the healthy members (for a dynamic strategy: every member some
            region may use). Members outside it never need computing.

        Raises
        ------
        NotFittedError
        ConfigError
            Wrong shape or dtype of ``healthy``.
        SelectionError
            No feasible selection among the healthy members.
        """
        return self._plan(self._check_healthy(healthy)).selection.copy()

    def selection_id(self, healthy: Mask) -> str:
        """Stable id of the selection in use for a healthy set (for explanations).

        Parameters
        ----------
        healthy : ndarray of bool, shape (n_models,)

        Returns
        -------
        str

        Raises
        ------
        NotFittedError
        ConfigError
            Wrong shape or dtype of ``healthy``.
        """
        return self._plan(self._check_healthy(healthy)).selection_id

    def used_mask(self, available: Mask, X: Matrix | None = None) -> Mask:
        """Members each row actually combines: its selection AND ``available``.

        Parameters
        ----------
        available : ndarray of bool, shape (n_events, n_models)
            Healthy and produced an output for the row.
        X : ndarray of shape (n_events, n_features), optional
            Required by dynamic strategies.

        Returns
        -------
        ndarray of bool, shape (n_events, n_models)

        Raises
        ------
        NotFittedError
        ConfigError
            Bad shapes, or ``X`` missing for a dynamic strategy.
        """
        return self._resolve(available, X)[2]

    def predict_proba(self, P: Proba, available: Mask, X: Matrix | None = None) -> FloatArray:
        """Combined class probabilities.

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, n_classes)
            Member outputs; ``NaN`` allowed where ``available`` is False.
        available : ndarray of bool, shape (n_events, n_models)
        X : ndarray of shape (n_events, n_features), optional

        Returns
        -------
        ndarray of shape (n_events, n_classes)
            Rows sum to 1; rows without a used member get the OOF class prior.

        Raises
        ------
        NotFittedError
        ConfigError, CombinerError
            Bad shapes or values.
        """
        plan, _, used = self._resolve(available, X)
        if plan.combiner is None:
            return np.tile(self.class_prior_, (used.shape[0], 1))
        Pa = np.asarray(P, dtype=np.float64)
        return plan.combiner.predict_proba(Pa[:, plan.cols], used[:, plan.cols])

    def contributions(self, P: Proba, available: Mask, X: Matrix | None = None) -> Contributions:
        """Additive per-member decomposition in the combiner's space (binary).

        Parameters
        ----------
        P, available, X
            As in :meth:`predict_proba`.

        Returns
        -------
        Contributions
            ``values`` of shape (n_events, n_models), 0 for unused members;
            ``probability()`` equals ``predict_proba(...)[:, 1]``.

        Raises
        ------
        NotFittedError
        ConfigError, CombinerError
            Bad shapes or values, or more than two classes.
        """
        plan, _, used = self._resolve(available, X)
        n = used.shape[0]
        values = np.zeros((n, self.n_models_))
        if plan.combiner is None:
            return Contributions(np.full(n, self.class_prior_[1]), values, "probability", IdentityLink())
        Pa = np.asarray(P, dtype=np.float64)
        part = plan.combiner.contributions(Pa[:, plan.cols], used[:, plan.cols])
        values[:, plan.cols] = part.values
        return Contributions(part.baseline, values, part.space, part.link)

    def effective_weights(self, available: Mask, X: Matrix | None = None) -> FloatArray:
        """Normalised weight each used member carries in each row (for explanations).

        Parameters
        ----------
        available, X
            As in :meth:`used_mask`.

        Returns
        -------
        ndarray of shape (n_events, n_models)
            Zero for unused members; rows sum to 1 (0 when nothing is used).

        Raises
        ------
        NotFittedError
        ConfigError
            Bad shapes.
        """
        plan, _, used = self._resolve(available, X)
        out = np.zeros(used.shape)
        if plan.combiner is not None:
            out[:, plan.cols] = plan.combiner.effective_weights(used[:, plan.cols])
        return out

    def exclusion_reasons(self, healthy: Mask, available: Mask, X: Matrix | None = None) -> npt.NDArray[np.int64]:
        """Why each member is not used for each row.

        Codes are those of :mod:`stream_ensemble.core.explain`: ``NO_EXCLUSION`` (-1) for a
        used member, else the position of the :class:`ExclusionReason`. Precedence:
        ``marked_down`` (not healthy) > ``failed`` (selected for the row, no output) >
        ``outside_region`` (a dynamic strategy uses it elsewhere, not for this row) >
        ``over_budget`` (not selected, and adding it to the row's selection would exceed the
        budget) > ``not_selected``.

        Parameters
        ----------
        healthy : ndarray of bool, shape (n_models,)
        available : ndarray of bool, shape (n_events, n_models)
        X : ndarray of shape (n_events, n_features), optional

        Returns
        -------
        ndarray of int64, shape (n_events, n_models)

        Raises
        ------
        NotFittedError
        ConfigError
            Bad shapes, or ``X`` missing for a dynamic strategy.
        """
        h = self._check_healthy(healthy)
        avail = np.asarray(available)
        plan, row_sel, used = self._resolve(avail, X)
        row_sel = np.broadcast_to(row_sel, used.shape)
        row_cost = row_sel.astype(np.float64) @ self.costs_
        over = self.costs_[None, :] + row_cost[:, None] > self.constraints_.budget
        codes = np.full(used.shape, exclusion_code(ExclusionReason.NOT_SELECTED), dtype=np.int64)
        codes[over & ~plan.selection[None, :]] = exclusion_code(ExclusionReason.OVER_BUDGET)
        codes[plan.selection[None, :] & ~row_sel] = exclusion_code(ExclusionReason.OUTSIDE_REGION)
        # Also FAILED: members the healthy plan required that produced nothing in the whole
        # batch (the batch was then combined with a re-selection that no longer lists them).
        dropped = self._plan(h).selection & ~plan.selection
        codes[~avail & (row_sel | dropped[None, :])] = exclusion_code(ExclusionReason.FAILED)
        codes[:, ~h] = exclusion_code(ExclusionReason.MARKED_DOWN)
        codes[used] = NO_EXCLUSION
        return codes


#: What :func:`fit_strategy` returns.
FittedStrategy = EnsembleStrategy


def fit_strategy(
    name: str | StrategyName,
    P_oof: Proba,
    y: Labels,
    *,
    costs: FloatArray,
    constraints: SelectionConstraints | None = None,
    X_oof: Matrix | None = None,
    member_names: Sequence[str] | None = None,
    random_state: int = 0,
) -> EnsembleStrategy:
    """Fit a registered strategy on out-of-fold predictions.

    Parameters
    ----------
    name : str or StrategyName
    P_oof : ndarray of shape (n_oof, n_models, n_classes)
    y : ndarray of int, shape (n_oof,)
    costs : ndarray of shape (n_models,)
    constraints : SelectionConstraints, optional
    X_oof : ndarray of shape (n_oof, n_features), optional
        Needed by ``dynamic_regions`` and ``knora_e``.
    member_names : sequence of str, optional
    random_state : int, default=0

    Returns
    -------
    EnsembleStrategy

    Raises
    ------
    ConfigError
        Unknown name or bad arguments.
    CombinerError, SelectionError
        Invalid data or infeasible constraints.
    """
    m = np.shape(P_oof)[1]
    names = [f"m{j}" for j in range(m)] if member_names is None else list(member_names)
    return EnsembleStrategy(parse_strategy(name).value, member_names=names, constraints=constraints,
                            random_state=random_state).fit(P_oof, y, costs=costs, X=X_oof)
