"""Voting and averaging rules as pure functions over member probabilities.

All rules renormalise over the members present in each row. A row with no present member (or
whose present members all carry zero weight) gets the uniform prior. The sklearn-style
estimators built on them are in :mod:`stream_ensemble.core.combiners.voting`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit, softmax

from stream_ensemble.core.combiners._base import (
    EPS,
    FloatArray,
    clipped_log_odds,
    normalised_weights,
    validate_proba,
)
from stream_ensemble.errors import CombinerError, ConfigError
from stream_ensemble.types import Mask, Proba

__all__ = ["check_weights", "geometric_mean", "hard_vote", "soft_vote"]


def check_weights(weights: Any, n_models: int) -> FloatArray:
    """Validate explicit member weights and return them as float64, shape (n_models,).

    Parameters
    ----------
    weights : array-like of shape (n_models,)
        Non-negative, finite, not all zero.
    n_models : int

    Returns
    -------
    ndarray of shape (n_models,)

    Raises
    ------
    CombinerError
        If the length does not match ``n_models``.
    ConfigError
        If a weight is negative or not finite, or all are zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_models,):
        raise CombinerError(f"weights has shape {w.shape}, expected ({n_models},)")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ConfigError("weights must be finite, non-negative and not all zero")
    return w


def _resolve(P: Proba, mask: Mask | None, weights: Any | None) -> tuple[Proba, FloatArray]:
    clean, present = validate_proba(P, mask)
    m = clean.shape[1]
    w = np.ones(m) if weights is None else check_weights(weights, m)
    return clean, normalised_weights(w, present)


def _uniform_where_empty(out: FloatArray, w_norm: FloatArray) -> FloatArray:
    out[w_norm.sum(axis=1) == 0] = 1.0 / out.shape[1]
    return out


def weighted_average(P: Proba, w_norm: FloatArray) -> FloatArray:
    """Per-row weighted mean of member probabilities.

    Parameters
    ----------
    P : ndarray of shape (n, n_models, n_classes)
    w_norm : ndarray of shape (n, n_models)
        Per-row weights (zero for absent members), summing to 1 or 0 per row.

    Returns
    -------
    ndarray of shape (n, n_classes)
    """
    return np.asarray(np.matmul(w_norm[:, None, :], P)[:, 0, :], dtype=np.float64)


def top_class(P: Proba) -> npt.NDArray[np.int64]:
    """Index of each member's top class, shape (n, m); ties go to the lower class index."""
    if P.shape[2] == 2:
        return (P[:, :, 1] > P[:, :, 0]).astype(np.int64)
    best, top = P[:, :, 0], np.zeros(P.shape[:2], dtype=np.int64)
    for k in range(1, P.shape[2]):  # explicit loop: argmax over a tiny last axis is slow
        better = P[:, :, k] > best
        best = np.where(better, P[:, :, k], best)
        top[better] = k
    return top


def vote_fractions(P: Proba, w_norm: FloatArray) -> FloatArray:
    """Per-row weighted fraction of members whose top class is each class.

    Parameters
    ----------
    P : ndarray of shape (n, n_models, n_classes)
    w_norm : ndarray of shape (n, n_models)

    Returns
    -------
    ndarray of shape (n, n_classes)
    """
    top = top_class(P)
    return np.column_stack([(w_norm * (top == k)).sum(axis=1) for k in range(P.shape[2])])


def log_linear_pool(P: Proba, w_norm: FloatArray) -> FloatArray:
    """Normalised weighted geometric mean (mean log-odds for two classes), clipped at ``EPS``.

    Parameters
    ----------
    P : ndarray of shape (n, n_models, n_classes)
    w_norm : ndarray of shape (n, n_models)

    Returns
    -------
    ndarray of shape (n, n_classes)
    """
    if P.shape[2] == 2:
        p1 = expit((w_norm * clipped_log_odds(P)).sum(axis=1))
        return np.column_stack([1.0 - p1, p1])
    scores = np.matmul(w_norm[:, None, :], np.log(np.clip(P, EPS, 1.0 - EPS)))[:, 0, :]
    return np.asarray(softmax(scores, axis=1), dtype=np.float64)


def soft_vote(P: Proba, mask: Mask | None = None, weights: Any | None = None) -> FloatArray:
    """(Weighted) mean of the present members' probabilities.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    mask : ndarray of bool, shape (n_events, n_models), optional
        Present members; default all.
    weights : array-like of shape (n_models,), optional
        Non-negative member weights, renormalised over present members; default equal.

    Returns
    -------
    ndarray of shape (n_events, n_classes)
        Rows sum to 1; uniform for rows without a weighted present member.

    Raises
    ------
    CombinerError
        On invalid shapes or values.
    ConfigError
        On invalid weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> soft_vote(P, np.array([[True, True, False]]))
    array([[0.3, 0.7]])
    >>> soft_vote(P, weights=[1.0, 3.0, 0.0])
    array([[0.35, 0.65]])
    """
    clean, w_norm = _resolve(P, mask, weights)
    return _uniform_where_empty(weighted_average(clean, w_norm), w_norm)


def hard_vote(P: Proba, mask: Mask | None = None, weights: Any | None = None) -> FloatArray:
    """Majority vote: the (weighted) fraction of present members whose top class is each class.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    mask : ndarray of bool, shape (n_events, n_models), optional
    weights : array-like of shape (n_models,), optional

    Returns
    -------
    ndarray of shape (n_events, n_classes)
        Vote fractions (ties stay fractions); uniform for rows without a present member.

    Raises
    ------
    CombinerError
        On invalid shapes or values.
    ConfigError
        On invalid weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]]])
    >>> hard_vote(P).round(4)
    array([[0.3333, 0.6667]])
    >>> hard_vote(P, np.array([[False, True, True]]))
    array([[0.5, 0.5]])
    """
    clean, w_norm = _resolve(P, mask, weights)
    return _uniform_where_empty(vote_fractions(clean, w_norm), w_norm)


def geometric_mean(P: Proba, mask: Mask | None = None, weights: Any | None = None) -> FloatArray:
    """Normalised (weighted) geometric mean of clipped probabilities (log-linear pooling).

    Probabilities are clipped to ``[1e-6, 1 - 1e-6]``. For two classes this is the sigmoid of
    the weighted mean log-odds.

    Parameters
    ----------
    P : ndarray of shape (n_events, n_models, n_classes)
    mask : ndarray of bool, shape (n_events, n_models), optional
    weights : array-like of shape (n_models,), optional

    Returns
    -------
    ndarray of shape (n_events, n_classes)

    Raises
    ------
    CombinerError
        On invalid shapes or values.
    ConfigError
        On invalid weights.

    Examples
    --------
    >>> P = np.array([[[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]]])
    >>> geometric_mean(P).round(6)
    array([[0.5, 0.5]])
    >>> geometric_mean(P, np.array([[True, True, False]])).round(4)  # sigmoid(log(4) / 2)
    array([[0.3333, 0.6667]])
    """
    clean, w_norm = _resolve(P, mask, weights)
    return _uniform_where_empty(log_linear_pool(clean, w_norm), w_norm)
