"""Rank averaging: average of members' held-out ECDF ranks, mapped back by a Platt fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from stream_ensemble.core.combiners._base import (
    Combiner,
    CombinerName,
    FloatArray,
    Link,
    LogisticLink,
)
from stream_ensemble.errors import CombinerError, ConfigError
from stream_ensemble.types import Labels, Mask, Proba


def _platt(score: FloatArray, y: Labels, l2: float) -> tuple[float, float]:
    """Fit ``P(y=1 | s) = sigmoid(a s + b)`` by penalised maximum likelihood (penalty on a)."""
    yf = y.astype(np.float64)
    n = score.size

    def loss_grad(ab: FloatArray) -> tuple[float, FloatArray]:
        z = ab[0] * score + ab[1]
        loss = (np.logaddexp(0.0, z) - yf * z).sum() / n + 0.5 * l2 * ab[0] ** 2
        r = (expit(z) - yf) / n
        return float(loss), np.array([r @ score + l2 * ab[0], r.sum()])

    result = minimize(loss_grad, np.zeros(2), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


@dataclass(frozen=True, slots=True, eq=False)
class _MidrankECDF:
    """Mid-rank ECDF of reference scores, evaluated with one binary search per query.

    ``grid`` holds the distinct reference values, ``below[i]`` the fraction of references
    strictly below ``grid[i]`` (``below[-1] = 1``) and ``mid[i]`` that fraction plus half the
    fraction equal to ``grid[i]``.
    """

    grid: FloatArray
    below: FloatArray
    mid: FloatArray

    @classmethod
    def from_scores(cls, scores: FloatArray) -> _MidrankECDF:
        grid, counts = np.unique(scores, return_counts=True)
        cum = np.concatenate([[0], np.cumsum(counts)]) / scores.size
        return cls(grid=grid, below=cum, mid=cum[:-1] + 0.5 * counts / scores.size)

    def __call__(self, s: FloatArray) -> FloatArray:
        # Sorted queries let searchsorted reuse the previous position: ~3x faster than
        # searching a shuffled batch, even after paying for the argsort and the scatter.
        order = np.argsort(s)
        i = np.empty(s.size, dtype=np.intp)
        i[order] = np.searchsorted(self.grid, s[order], "left")
        at = np.minimum(i, self.grid.size - 1)
        return np.where(self.grid[at] == s, self.mid[at], self.below[i])


class RankAverage(Combiner):
    """Average of the members' ranks on held-out data, mapped to a probability (binary only).

    Algorithm
    ---------
    1. ``fit`` stores, for each member j, the sorted positive-class scores it gave on the
       held-out rows where it was present.
    2. A score s of member j becomes its mid-rank ECDF value
       ``r_j(s) = (#{ref < s} + #{ref <= s}) / (2 * n_ref_j)`` in [0, 1]; ties share a rank,
       so members that output exact 0 or 1 are handled.
    3. The ensemble score is the mean rank over present members, ``r = sum_j r_j / k``.
    4. ``r`` is mapped back to a probability by Platt scaling fit on the held-out rows,
       ``p = sigmoid(a r + b)`` (a small L2 penalty ``l2`` on ``a`` keeps it finite when ``r``
       separates the classes). Platt rather than isotonic because it is strictly monotone and
       invertible, which gives an exact additive decomposition and a baseline for empty rows.

    Contributions (rank space): baseline 0, member j adds ``r_j / k``; the link is
    ``sigmoid(a * total + b)``. Rows without members get the fitted class prior.

    Parameters
    ----------
    l2 : float, default=1e-4
        Ridge penalty on the Platt slope.

    Attributes
    ----------
    ecdf_ : list of _MidrankECDF
        Per-member mid-rank ECDF of its held-out positive-class scores.
    slope_, intercept_ : float
        Platt parameters.
    """

    name: ClassVar[CombinerName] = CombinerName.RANK_AVERAGE
    space: ClassVar[str] = "rank"
    binary_only: ClassVar[bool] = True

    def __init__(self, l2: float = 1e-4) -> None:
        self.l2 = l2

    def _fit(self, P: Proba, y: Labels, mask: Mask) -> None:
        if not np.isfinite(self.l2) or self.l2 < 0:
            raise ConfigError(f"l2 must be a finite non-negative float, got {self.l2!r}")
        never = np.flatnonzero(~mask.any(axis=0))
        if never.size:
            raise CombinerError(f"members {never.tolist()} are absent from every fit row; "
                                "they have no reference distribution to rank against")
        self.ecdf_ = [_MidrankECDF.from_scores(P[mask[:, j], j, 1]) for j in range(P.shape[1])]
        ranks, empty = self._mean_rank(P, mask)
        slope, intercept = _platt(ranks[~empty], y[~empty], float(self.l2))
        # A zero slope would make the map constant and non-invertible; nudge it.
        self.slope_ = slope if abs(slope) > 1e-12 else 1e-12
        self.intercept_ = intercept

    def _member_ranks(self, P: Proba, mask: Mask) -> tuple[FloatArray, FloatArray]:
        """Per-member ranks (zero where absent), shape (n, m), and present counts, shape (n,)."""
        ranks = np.zeros(mask.shape)
        for j, ecdf in enumerate(self.ecdf_):
            ranks[:, j] = ecdf(P[:, j, 1])
        ranks *= mask
        return ranks, mask.sum(axis=1).astype(np.float64)

    def _mean_rank(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        ranks, k = self._member_ranks(P, mask)
        empty = k == 0
        return ranks.sum(axis=1) / np.where(empty, 1.0, k), empty

    def _link(self) -> LogisticLink:
        return LogisticLink(self.slope_, self.intercept_)

    def _combine(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        r, empty = self._mean_rank(P, mask)
        p1 = self._link()(r)
        return np.column_stack([1.0 - p1, p1]), empty

    def _decompose(self, P: Proba, mask: Mask) -> tuple[FloatArray, FloatArray, Link, Mask]:
        ranks, k = self._member_ranks(P, mask)
        empty = k == 0
        values = ranks / np.where(empty, 1.0, k)[:, None]
        return np.zeros(P.shape[0]), values, self._link(), empty
