"""Dynamic selection: a member subset per input region, and KNORA-Eliminate.

Both selectors are fitted on held-out rows (features ``X``, member probabilities ``P``,
labels ``y``) and return per-event masks ``(n_events, n_models)`` that respect the healthy set.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.core.selection.cache import bytes_keyed, hex_keyed
from stream_ensemble.core.selection.constraints import SelectionConstraints, SelectionResult
from stream_ensemble.core.selection.objective import check_heldout
from stream_ensemble.core.selection.select import select
from stream_ensemble.errors import ConfigError, SelectionError
from stream_ensemble.types import Labels, Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def _check_X(X: Matrix, n_features: int | None = None) -> FloatArray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or (n_features is not None and X.shape[1] != n_features):
        raise SelectionError(f"X must be (n_events, {n_features or 'n_features'}), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise SelectionError("X must be finite (preprocess missing values first)")
    return X


class RegionSelector(BaseEstimator):  # type: ignore[misc]
    """Per-region branch-and-bound selection over a KMeans partition of the input space.

    Parameters
    ----------
    n_regions : int
        KMeans clusters fitted on the held-out rows.
    min_region_rows : int
        Regions with fewer held-out rows use the global selection.
    constraints : SelectionConstraints, optional
        Same constraints for the global and every regional selection; each region gets
        ``time_limit_s / n_regions``.
    reselect_time_limit_s : float
        Time limit per region when a health change forces a re-selection.
    random_state : int

    Attributes
    ----------
    centroids_ : ndarray of shape (n_regions, n_features)
    region_masks_ : ndarray of shape (n_regions, n_models), bool
    competence_ : ndarray of shape (n_regions, n_models)
        Accuracy of each member on each region's held-out rows (global accuracy for small regions).
    fallback_ : ndarray of shape (n_regions,), bool
        Regions that use the global selection.
    global_ : SelectionResult
    """

    def __init__(
        self,
        n_regions: int = 8,
        min_region_rows: int = 30,
        constraints: SelectionConstraints | None = None,
        reselect_time_limit_s: float = 0.02,
        random_state: int = 0,
    ) -> None:
        self.n_regions = n_regions
        self.min_region_rows = min_region_rows
        self.constraints = constraints
        self.reselect_time_limit_s = reselect_time_limit_s
        self.random_state = random_state

    def fit(self, X: Matrix, P: Proba, y: Labels, costs: FloatArray, allowed: Mask | None = None) -> RegionSelector:
        """Partition the held-out rows and select a subset per region.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        P : ndarray of shape (n_events, n_models, n_classes)
        y : ndarray of shape (n_events,)
        costs : ndarray of shape (n_models,)
        allowed : ndarray of shape (n_models,), bool, optional

        Returns
        -------
        RegionSelector

        Raises
        ------
        ConfigError
            ``n_regions < 1`` or ``min_region_rows < 1``.
        SelectionError
            Invalid inputs or infeasible constraints.
        """
        if self.n_regions < 1 or self.min_region_rows < 1:
            raise ConfigError("n_regions and min_region_rows must be >= 1")
        P, y, costs, allowed = check_heldout(P, y, costs, allowed)
        X = _check_X(X)
        if X.shape[0] != P.shape[0]:
            raise SelectionError("X and P must have the same number of rows")
        c = self.constraints or SelectionConstraints()
        k = min(self.n_regions, X.shape[0])
        km = KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(X)
        self.centroids_ = np.asarray(km.cluster_centers_, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self.P_, self.y_, self.costs_, self.allowed_ = P, y, costs, allowed
        self.labels_ = self._nearest(X)
        self._region_constraints = replace(c, time_limit_s=c.time_limit_s / k)
        self.global_ = select(P, y, costs=costs, constraints=c, allowed=allowed)
        correct = (np.argmax(P, axis=2) == y[:, None]).astype(np.float64)
        self.competence_ = np.tile(correct.mean(axis=0), (k, 1))
        self.fallback_ = np.zeros(k, dtype=bool)
        masks = np.zeros((k, P.shape[1]), dtype=bool)
        for r in range(k):
            rows = self.labels_ == r
            if rows.sum() < self.min_region_rows:
                self.fallback_[r] = True
                masks[r] = self.global_.mask
                continue
            self.competence_[r] = correct[rows].mean(axis=0)
            try:
                masks[r] = self._select_region(r, allowed, self._region_constraints, self.global_.mask).mask
            except SelectionError:  # e.g. the diversity floor cannot be met on this region's rows
                self.fallback_[r] = True
                masks[r] = self.global_.mask
        self.region_masks_ = masks
        self._by_health: dict[bytes, Mask] = {allowed.tobytes(): masks}
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "_by_health" in state:
            state["_by_health"] = hex_keyed(state["_by_health"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_by_health" in state:
            state = {**state, "_by_health": bytes_keyed(state["_by_health"])}
        super().__setstate__(state)

    def _select_region(
        self, r: int, allowed: Mask, c: SelectionConstraints, warm: Mask
    ) -> SelectionResult:
        rows = self.labels_ == r
        return select(self.P_[rows], self.y_[rows], costs=self.costs_, constraints=c, allowed=allowed, incumbent=warm & allowed)

    def _nearest(self, X: FloatArray) -> IntArray:
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is constant per row, so it is dropped.
        d = (self.centroids_**2).sum(axis=1)[None, :] - 2.0 * X @ self.centroids_.T
        out: IntArray = np.argmin(d, axis=1).astype(np.intp)
        return out

    def assign(self, X: Matrix) -> IntArray:
        """Region of each event (nearest centroid; ties go to the lowest region index).

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)

        Returns
        -------
        ndarray of shape (n_events,), int

        Raises
        ------
        NotFittedError
        SelectionError
            Wrong number of features.
        """
        check_is_fitted(self, "centroids_")
        return self._nearest(_check_X(X, self.n_features_in_))

    def region_masks(self, allowed: Mask | None = None) -> Mask:
        """Per-region masks for a healthy set, re-selecting (memoised) regions that lost a member.

        Parameters
        ----------
        allowed : ndarray of shape (n_models,), bool, optional
            ``None`` = the set given to ``fit``.

        Returns
        -------
        ndarray of shape (n_regions, n_models), bool

        Raises
        ------
        NotFittedError
        SelectionError
            No feasible subset among the allowed members.
        """
        check_is_fitted(self, "region_masks_")
        a = self.allowed_ if allowed is None else np.asarray(allowed, dtype=bool) & self.allowed_
        key = np.ascontiguousarray(a).tobytes()
        masks = self._by_health.get(key)
        if masks is not None:
            return masks
        c = replace(self._region_constraints, time_limit_s=self.reselect_time_limit_s)
        masks = self.region_masks_.copy()
        lost = np.any(masks & ~a, axis=1)
        glob: Mask | None = None
        for r in np.flatnonzero(lost):
            if not self.fallback_[r]:
                try:
                    masks[r] = self._select_region(int(r), a, c, self.region_masks_[r]).mask
                    continue
                except SelectionError:
                    pass  # fall back to the global selection below
            if glob is None:
                glob = select(
                    self.P_, self.y_, costs=self.costs_, constraints=c, allowed=a, incumbent=self.global_.weights * a
                ).mask
            masks[r] = glob
        self._by_health[key] = masks
        return masks

    def masks(self, X: Matrix, allowed: Mask | None = None) -> Mask:
        """Member mask of each event: its region's subset under the healthy set.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        allowed : ndarray of shape (n_models,), bool, optional

        Returns
        -------
        ndarray of shape (n_events, n_models), bool

        Raises
        ------
        NotFittedError
        SelectionError
            Wrong features or no feasible subset among the allowed members.
        """
        return self.region_masks(allowed)[self.assign(X)]


class KnoraE(BaseEstimator):  # type: ignore[misc]
    """KNORA-Eliminate (Ko, Sabourin & Britto 2008) over held-out rows.

    For each event, keep the members that are correct on all ``k`` nearest held-out
    neighbours, dropping the farthest neighbour until some member qualifies; all allowed
    members if none is correct even on the nearest one.

    Parameters
    ----------
    k : int
        Neighbourhood size.

    Attributes
    ----------
    correct_ : ndarray of shape (n_heldout, n_models), bool
    allowed_ : ndarray of shape (n_models,), bool
    """

    def __init__(self, k: int = 7) -> None:
        self.k = k

    def fit(
        self, X: Matrix, P: Proba, y: Labels, costs: FloatArray | None = None, allowed: Mask | None = None
    ) -> KnoraE:
        """Store the held-out rows and which member was right on each.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        P : ndarray of shape (n_events, n_models, n_classes)
        y : ndarray of shape (n_events,)
        costs : ndarray of shape (n_models,), optional
            Unused (API parity with ``RegionSelector``).
        allowed : ndarray of shape (n_models,), bool, optional

        Returns
        -------
        KnoraE

        Raises
        ------
        ConfigError
            ``k < 1``.
        SelectionError
            Invalid inputs or nothing allowed.
        """
        if self.k < 1:
            raise ConfigError("k must be >= 1")
        P, y, _, allowed = check_heldout(P, y, costs, allowed)
        X = _check_X(X)
        if X.shape[0] != P.shape[0]:
            raise SelectionError("X and P must have the same number of rows")
        if not allowed.any():
            raise SelectionError("infeasible: no member is allowed")
        self.n_features_in_ = X.shape[1]
        self.correct_ = np.argmax(P, axis=2) == y[:, None]
        self.allowed_ = allowed
        self.nn_ = NearestNeighbors(n_neighbors=min(self.k, X.shape[0]), algorithm="brute").fit(X)
        return self

    def masks(self, X: Matrix, allowed: Mask | None = None) -> Mask:
        """Per-event KNORA-E mask.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        allowed : ndarray of shape (n_models,), bool, optional

        Returns
        -------
        ndarray of shape (n_events, n_models), bool

        Raises
        ------
        NotFittedError
        SelectionError
            Wrong features or no member allowed.
        """
        check_is_fitted(self, "correct_")
        X = _check_X(X, self.n_features_in_)
        a = self.allowed_ if allowed is None else np.asarray(allowed, dtype=bool) & self.allowed_
        if not a.any():
            raise SelectionError("infeasible: no member is allowed")
        idx = self.nn_.kneighbors(X, return_distance=False)  # (n, k), nearest first
        # all_right[:, t] = correct on the t+1 nearest neighbours (cumulative AND).
        all_right = np.logical_and.accumulate(self.correct_[idx] & a, axis=1)  # (n, k, m)
        n_levels = all_right.any(axis=2).sum(axis=1)  # non-empty levels form a prefix
        out = np.broadcast_to(a, (X.shape[0], a.shape[0])).copy()
        has = n_levels > 0
        out[has] = all_right[np.flatnonzero(has), n_levels[has] - 1]
        return out


class RegionMethod(str, Enum):
    """Dynamic selectors (registry: ``REGION_SELECTORS``)."""

    REGIONS = "regions"
    KNORA_E = "knora_e"


REGION_SELECTORS: dict[RegionMethod, type[RegionSelector] | type[KnoraE]] = {
    RegionMethod.REGIONS: RegionSelector,
    RegionMethod.KNORA_E: KnoraE,
}


def make_region_selector(name: str | RegionMethod, **params: object) -> RegionSelector | KnoraE:
    """Build a dynamic selector by name.

    Parameters
    ----------
    name : {"regions", "knora_e"}
    **params
        Constructor parameters.

    Returns
    -------
    RegionSelector or KnoraE

    Raises
    ------
    ConfigError
        Unknown name.
    """
    try:
        cls = REGION_SELECTORS[RegionMethod(name)]
    except ValueError:
        raise ConfigError(f"unknown region selector {name!r}; choose one of: {', '.join(r.value for r in RegionMethod)}") from None
    return cls(**params)  # type: ignore[arg-type]
