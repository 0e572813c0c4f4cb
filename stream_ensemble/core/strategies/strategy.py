"""Ensemble strategies: a member selection plus a combiner, fitted on out-of-fold predictions.

A strategy is fitted once on the OOF tensor of the pool (:mod:`stream_ensemble.core.members.oof`) and
then served batch by batch. Serving is driven by the *healthy set* (members an operator has not
marked down): :meth:`EnsembleStrategy.required_members` says which members to run (unselected
members are never computed), :meth:`~EnsembleStrategy.used_mask` which of the outputs each row
combines, :meth:`~EnsembleStrategy.predict_proba` the combined probabilities.

How re-selection works after a health change: :mod:`stream_ensemble.core.strategies.planner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.core.combiners import Contributions, IdentityLink, validate_labels, validate_proba
from stream_ensemble.core.confidence.explanation import NO_EXCLUSION, ExclusionReason, exclusion_code
from stream_ensemble.core.selection import SelectionConstraints
from stream_ensemble.core.strategies.catalogue import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    SelectorKind,
    StrategyName,
    parse_strategy,
)
from stream_ensemble.core.strategies.planner import Plan, Planner
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]


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
    planner_ : Planner
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
        self.planner_ = Planner(self.spec_, clean.astype(np.float32), labels, cost, self.constraints_,
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

    def _plan(self, healthy: Mask) -> Plan:
        return self.planner_.plan(healthy)

    # ------------------------------------------------------------------------- plans
    def _check_healthy(self, healthy: Any) -> Mask:
        check_is_fitted(self, "planner_")
        h = np.asarray(healthy)
        if h.dtype != np.bool_ or h.shape != (self.n_models_,):
            raise ConfigError(f"healthy must be a ({self.n_models_},) bool array, got {h.dtype} {h.shape}")
        return h

    def _resolve(self, available: Any, X: Matrix | None) -> tuple[Plan, Mask, Mask]:
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

        Codes are those of :mod:`stream_ensemble.core.confidence`: ``NO_EXCLUSION`` (-1) for a
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
