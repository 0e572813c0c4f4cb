"""Links and additive contributions: how a combiner's score maps to a probability.

A combiner whose output is ``link(baseline + sum of per-member values)`` can explain itself
exactly: :class:`Contributions` holds that decomposition for a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.special import expit, logit

FloatArray = npt.NDArray[np.float64]

#: Probabilities are clipped to ``[EPS, 1 - EPS]`` before any logarithm.
EPS = 1e-6


class Link(Protocol):
    """Monotone map from a combiner's additive space to the positive-class probability."""

    def __call__(self, total: FloatArray) -> FloatArray: ...

    def inverse(self, proba: FloatArray) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """Identity: the additive space already is a probability (or a vote fraction)."""

    def __call__(self, total: FloatArray) -> FloatArray:
        return np.asarray(total, dtype=np.float64)

    def inverse(self, proba: FloatArray) -> FloatArray:
        return np.asarray(proba, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class LogisticLink:
    """``sigmoid(slope * total + intercept)``; the default (1, 0) maps log-odds to probability.

    Parameters
    ----------
    slope : float
        Non-zero slope (a zero slope would make the link constant and non-invertible).
    intercept : float
        Offset added before the sigmoid.
    """

    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, total: FloatArray) -> FloatArray:
        return np.asarray(expit(self.slope * np.asarray(total) + self.intercept), np.float64)

    def inverse(self, proba: FloatArray) -> FloatArray:
        z = logit(np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0 - EPS))
        return np.asarray((z - self.intercept) / self.slope, dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class Contributions:
    """Additive decomposition of the positive-class score of a binary combiner.

    ``link(baseline + values.sum(axis=1))`` equals ``predict_proba(P, mask)[:, 1]``.

    Parameters
    ----------
    baseline : ndarray of shape (n_events,)
        Part of the score that does not depend on any member (0, an intercept, or the prior
        mapped into ``space`` for rows without members).
    values : ndarray of shape (n_events, n_models)
        Per-member contribution in ``space``; exactly 0 for absent members.
    space : str
        The additive space: ``"probability"``, ``"log_odds"``, ``"vote_fraction"`` or ``"rank"``.
    link : Link
        Maps a total in ``space`` to the positive-class probability.
    """

    baseline: FloatArray
    values: FloatArray
    space: str
    link: Link

    def to_probability(self, total: FloatArray) -> FloatArray:
        """Map totals in ``space`` to positive-class probabilities.

        Parameters
        ----------
        total : ndarray of shape (n_events,)
            Usually ``baseline + values.sum(axis=1)``.

        Returns
        -------
        ndarray of shape (n_events,)
            Positive-class probabilities.
        """
        return self.link(total)

    def probability(self) -> FloatArray:
        """Return ``to_probability(baseline + values.sum(axis=1))``, shape (n_events,)."""
        return self.to_probability(self.baseline + self.values.sum(axis=1))
