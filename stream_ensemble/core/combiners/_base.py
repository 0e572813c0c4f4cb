"""Shared machinery of the combiners: names, validation, base class.

Links and contributions live in :mod:`.links` (re-exported here for the combiner modules).

Every combiner works on a probability tensor ``P`` of shape ``(n_events, n_models, n_classes)``
and a member mask of shape ``(n_events, n_models)`` (``False`` = the member is absent for that
row, whatever the reason; its entries in ``P`` may be ``NaN`` and are never read).
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.core.combiners.links import EPS, Contributions, FloatArray, IdentityLink, Link, LogisticLink
from stream_ensemble.errors import CombinerError
from stream_ensemble.types import Labels, Mask, Proba

__all__ = [
    "EPS", "Combiner", "CombinerName", "Contributions", "FloatArray", "IdentityLink", "Link", "LogisticLink",
    "clipped_log_odds", "empty_rows", "normalised_weights", "validate_labels", "validate_proba",
]


class CombinerName(str, enum.Enum):
    """Registered combination strategies (the keys of ``COMBINERS``)."""

    HARD_VOTING = "hard_voting"
    SOFT_VOTING = "soft_voting"
    WEIGHTED = "weighted"
    GEOMETRIC_MEAN = "geometric_mean"
    RANK_AVERAGE = "rank_average"
    STACKING = "stacking"
    BOOSTING = "boosting"


def validate_proba(P: Any, mask: Any | None, n_models: int | None = None,
                   n_classes: int | None = None) -> tuple[Proba, Mask]:
    """Check ``P`` and ``mask`` and return ``P`` with absent entries zeroed, plus the mask.

    Parameters
    ----------
    P : array-like of shape (n_events, n_models, n_classes)
        Member probabilities; ``NaN`` allowed only where ``mask`` is False.
    mask : array-like of bool, shape (n_events, n_models), or None
        Present members. ``None`` means every member is present.
    n_models, n_classes : int or None
        Expected sizes (from ``fit``); ``None`` skips the check.

    Returns
    -------
    P : ndarray of shape (n_events, n_models, n_classes)
        A float64 copy with absent entries set to 0.
    mask : ndarray of bool, shape (n_events, n_models)

    Raises
    ------
    CombinerError
        On a wrong shape or dtype, a ``NaN`` or out-of-range value for a present member.
    """
    arr = np.asarray(P, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] == 0 or arr.shape[2] < 2:
        raise CombinerError(
            f"P must have shape (n_events, n_models>=1, n_classes>=2), got {arr.shape}")
    n, m, c = arr.shape
    if n_models is not None and m != n_models:
        raise CombinerError(f"P has {m} models but the combiner was fit on {n_models}")
    if n_classes is not None and c != n_classes:
        raise CombinerError(f"P has {c} classes but the combiner was fit on {n_classes}")
    if mask is None:
        present = np.ones((n, m), dtype=bool)
    else:
        present = np.asarray(mask)
        if present.dtype != np.bool_:
            raise CombinerError(f"mask must be a bool array, got dtype {present.dtype}")
        if present.shape != (n, m):
            raise CombinerError(f"mask has shape {present.shape}, expected {(n, m)} to match P")
    # Per-class 2-D passes: reductions over a length-2 last axis are ~10x slower in numpy.
    bad = np.isnan(arr[:, :, 0])
    for k in range(1, c):
        bad |= np.isnan(arr[:, :, k])
    bad &= present
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise CombinerError(
            f"P has NaN for {rows.size} present (mask=True) member entries, first at "
            f"event {rows[0]}, model {cols[0]}; set mask=False for members that did not run")
    if present.all():
        clean = arr  # never modified in place below, so the caller's array is safe
    else:
        clean = arr.copy()
        clean[~present] = 0.0
    if clean.size and (clean.min() < 0.0 or clean.max() > 1.0):
        raise CombinerError("P must hold probabilities in [0, 1] for present members")
    return clean, present


def validate_labels(y: Any, n_events: int, n_classes: int) -> Labels:
    """Check labels: integer indices in ``[0, n_classes)``, every class present.

    Parameters
    ----------
    y : array-like of shape (n_events,)
    n_events, n_classes : int

    Returns
    -------
    ndarray of int64, shape (n_events,)

    Raises
    ------
    CombinerError
        On a shape mismatch, non-integer labels, labels out of range or a missing class.
    """
    arr = np.asarray(y)
    if arr.shape != (n_events,):
        raise CombinerError(f"y has shape {arr.shape}, expected ({n_events},) to match P")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise CombinerError(f"y must hold integer class indices, got dtype {arr.dtype}")
    labels = arr.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise CombinerError(f"y must hold class indices in [0, {n_classes})")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        raise CombinerError(
            f"y has no example of class(es) {np.flatnonzero(counts == 0).tolist()}; "
            "every class must appear in the held-out labels")
    return labels


def clipped_log_odds(P: Proba) -> FloatArray:
    """Log-odds of the positive class from clipped probabilities, shape (n_events, n_models).

    Uses both columns (``log(p1 / p0)``) so it agrees with a normalised geometric mean even
    when a member's row does not sum to 1 to the last bit.
    """
    ratio = np.clip(P[:, :, 1], EPS, 1.0 - EPS) / np.clip(P[:, :, 0], EPS, 1.0 - EPS)
    return np.asarray(np.log(ratio), dtype=np.float64)


def empty_rows(mask: Mask) -> Mask:
    """Rows with no present member, shape (n_events,)."""
    return np.asarray(~mask.any(axis=1), dtype=np.bool_)


def normalised_weights(weights: FloatArray, mask: Mask) -> FloatArray:
    """Per-row weights renormalised over present members, shape (n_events, n_models).

    Rows whose present members carry no weight are all zeros (they fall back to the prior).
    """
    w = np.asarray(mask * weights, dtype=np.float64)
    total = w.sum(axis=1, keepdims=True)
    np.divide(w, total, out=w, where=total > 0)
    return w


class Combiner(BaseEstimator):  # type: ignore[misc]
    """Base of every combiner (sklearn conventions).

    Subclasses implement ``_combine`` (and ``_fit`` when they learn something) and
    ``_decompose`` for :meth:`contributions`. The base class validates inputs, records the
    class prior in ``fit`` and returns it for rows where no member carries weight: the
    fitted prior from ``y``, or a uniform distribution when a stateless rule is used unfitted.
    """

    name: ClassVar[CombinerName]
    space: ClassVar[str]
    #: True when the rule needs no ``fit`` (it may still be fit to learn the class prior).
    stateless: ClassVar[bool] = False
    #: True when only binary problems are supported.
    binary_only: ClassVar[bool] = False

    def __sklearn_is_fitted__(self) -> bool:
        return self.stateless or hasattr(self, "class_prior_")

    def fit(self, P: Proba, y: Labels, mask: Mask | None = None) -> Self:
        """Fit on held-out (out-of-fold) member predictions.

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, n_classes)
            Held-out member probabilities (never predictions on rows the members were fit on).
        y : ndarray of int, shape (n_events,)
            True class indices in ``[0, n_classes)``.
        mask : ndarray of bool, shape (n_events, n_models), optional
            Present members; default all present.

        Returns
        -------
        self

        Raises
        ------
        CombinerError
            On invalid shapes, values or labels.
        ConfigError
            On invalid hyperparameters.
        """
        clean, present = validate_proba(P, mask)
        n, m, c = clean.shape
        if self.binary_only and c != 2:
            raise CombinerError(f"{self.name.value} supports binary problems only, got {c} classes")
        labels = validate_labels(y, n, c)
        self.n_models_in_ = m
        self.n_classes_ = c
        self.class_prior_ = np.bincount(labels, minlength=c) / n
        self._fit(clean, labels, present)
        return self

    def _fit(self, P: Proba, y: Labels, mask: Mask) -> None:
        """Learn rule-specific state; inputs already validated (absent entries are 0)."""

    def _prior(self, n_classes: int) -> FloatArray:
        prior = getattr(self, "class_prior_", None)
        if prior is None:
            return np.full(n_classes, 1.0 / n_classes)
        return np.asarray(prior, dtype=np.float64)

    def _validate(self, P: Proba, mask: Mask | None) -> tuple[Proba, Mask]:
        check_is_fitted(self)
        clean, present = validate_proba(P, mask, getattr(self, "n_models_in_", None),
                                        getattr(self, "n_classes_", None))
        if self.binary_only and clean.shape[2] != 2:
            raise CombinerError(f"{self.name.value} supports binary problems only")
        return clean, present

    def predict_proba(self, P: Proba, mask: Mask | None = None) -> FloatArray:
        """Combine member probabilities.

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, n_classes)
        mask : ndarray of bool, shape (n_events, n_models), optional

        Returns
        -------
        ndarray of shape (n_events, n_classes)
            Rows sum to 1. Rows without any weighted present member get the class prior.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If a learned rule is used before ``fit``.
        CombinerError
            On invalid shapes or values.
        """
        clean, present = self._validate(P, mask)
        out, empty = self._combine(clean, present)
        out[empty] = self._prior(clean.shape[2])
        return out

    def contributions(self, P: Proba, mask: Mask | None = None) -> Contributions:
        """Additive per-member decomposition of the positive-class score (binary only).

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, 2)
        mask : ndarray of bool, shape (n_events, n_models), optional

        Returns
        -------
        Contributions
            ``to_probability(baseline + values.sum(1))`` equals ``predict_proba(P, mask)[:, 1]``.

        Raises
        ------
        CombinerError
            If ``P`` is not binary or is invalid.
        """
        clean, present = self._validate(P, mask)
        if clean.shape[2] != 2:
            raise CombinerError("contributions are defined for binary problems only")
        baseline, values, link, empty = self._decompose(clean, present)
        baseline = np.where(empty, link.inverse(np.full(empty.shape, self._prior(2)[1])),
                            baseline)
        values = np.where(empty[:, None], 0.0, values)
        return Contributions(baseline=baseline, values=values, space=self.space, link=link)

    def effective_weights(self, mask: Mask) -> FloatArray:
        """Normalised per-member weight actually used in each row, for explanations.

        Parameters
        ----------
        mask : ndarray of bool, shape (n_events, n_models)

        Returns
        -------
        ndarray of shape (n_events, n_models)
            Non-negative, zero for absent members, rows sum to 1 (or 0 when no member counts).

        Raises
        ------
        CombinerError
            On a mask of the wrong dtype or width.
        """
        check_is_fitted(self)
        present = np.asarray(mask)
        if present.dtype != np.bool_ or present.ndim != 2:
            raise CombinerError("mask must be a 2-D bool array (n_events, n_models)")
        m_fit = getattr(self, "n_models_in_", None)
        if m_fit is not None and present.shape[1] != m_fit:
            raise CombinerError(f"mask has {present.shape[1]} models, fit on {m_fit}")
        return normalised_weights(self._member_importance(present.shape[1]), present)

    def _member_importance(self, n_models: int) -> FloatArray:
        """Non-negative global importance per member, shape (n_models,); default equal."""
        return np.ones(n_models)

    def _combine(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        """Return ``(proba (n, c), empty (n,))``; rows flagged empty are replaced by the prior."""
        raise NotImplementedError

    def _decompose(self, P: Proba, mask: Mask) -> tuple[FloatArray, FloatArray, Link, Mask]:
        """Return ``(baseline (n,), values (n, m), link, empty (n,))`` for a binary ``P``."""
        raise NotImplementedError
