"""Explanation payload of scored events, and per-feature occlusion attribution.

The payload is built for a whole batch from arrays (no combiner import: the caller passes the
combiner's contribution decomposition as plain arrays) and is JSON-ready: plain Python floats,
str, bool, lists and ``None``, numbers rounded to 6 significant digits, non-finite numbers as
``None``.

Levels (:class:`ExplainLevel`):

* ``none``: no payload (``None``).
* ``summary`` (default): ``members`` -- per member ``{model, used, reason, proba, weight,
  contribution}`` with ``reason`` ``None`` for used members; ``baseline``; ``space``;
  ``score`` = ``baseline + sum`` of the used members' contributions (the combiner-space
  score, computed before rounding); ``agreement``; ``cache_hit``; ``selection_id``; ``top`` --
  the up-to-3 used members with the largest ``|contribution|`` as ``{model, contribution}``
  (ties broken by member order).
* ``full``: ``summary`` plus ``feature_attribution`` (one caller-supplied dict per row, e.g.
  from :meth:`OcclusionAttribution.to_dicts`; ``None`` if none was supplied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_ensemble.core.confidence.rounding import json_list
from stream_ensemble.errors import CombinerError, ConfigError

FloatArray = npt.NDArray[np.float64]

#: Number of contributors listed under ``top``.
TOP_K = 3


class ExplainLevel(str, Enum):
    """How much explanation a scored event carries."""

    NONE = "none"
    SUMMARY = "summary"
    FULL = "full"


DEFAULT_EXPLAIN_LEVEL = ExplainLevel.SUMMARY


class ExclusionReason(str, Enum):
    """Why a member did not contribute to a row. Integer code = position in this enum."""

    MARKED_DOWN = "marked_down"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OUTSIDE_REGION = "outside_region"
    OVER_BUDGET = "over_budget"
    NOT_SELECTED = "not_selected"
    BREAKER_OPEN = "breaker_open"  # last: codes are positions, earlier ones must not move


#: ``EXCLUSION_CODES[code]`` is the reason of an integer code; code ``NO_EXCLUSION`` (-1) = used.
EXCLUSION_CODES: tuple[ExclusionReason, ...] = tuple(ExclusionReason)
NO_EXCLUSION = -1


def exclusion_code(reason: str | ExclusionReason | None) -> int:
    """Integer code of an exclusion reason (``None`` -> ``NO_EXCLUSION``).

    Parameters
    ----------
    reason : str, ExclusionReason or None
        A reason name.

    Returns
    -------
    int
        Index in :data:`EXCLUSION_CODES`, or ``-1`` for ``None``.

    Raises
    ------
    ConfigError
        For an unknown reason.
    """
    if reason is None:
        return NO_EXCLUSION
    try:
        return EXCLUSION_CODES.index(ExclusionReason(reason))
    except ValueError as exc:
        raise ConfigError(f"unknown exclusion reason {reason!r}") from exc


def parse_explain_level(level: str | ExplainLevel | None) -> ExplainLevel:
    """Validate an explanation level (``None`` -> the default, ``summary``).

    Parameters
    ----------
    level : str, ExplainLevel or None
        ``"none"``, ``"summary"`` or ``"full"``.

    Returns
    -------
    ExplainLevel
        The parsed level.

    Raises
    ------
    ConfigError
        For an unknown level.
    """
    if level is None:
        return DEFAULT_EXPLAIN_LEVEL
    try:
        return ExplainLevel(level)
    except ValueError as exc:
        known = [v.value for v in ExplainLevel]
        raise ConfigError(f"unknown explain level {level!r}; known: {known}") from exc


def _codes(exclusion: npt.ArrayLike, used: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Exclusion codes, ``NO_EXCLUSION`` where used (validated)."""
    ex = np.asarray(exclusion)
    if ex.shape != used.shape:
        raise CombinerError(f"exclusion {ex.shape} and used {used.shape} differ")
    if ex.dtype.kind in "iu":
        codes = ex.astype(np.int64)
    else:
        codes = np.vectorize(exclusion_code, otypes=[np.int64])(ex) if ex.size else ex.astype(np.int64)
    if np.any((codes < NO_EXCLUSION) | (codes >= len(EXCLUSION_CODES))):
        raise CombinerError("exclusion code out of range")
    if np.any(~used & (codes == NO_EXCLUSION)):
        raise CombinerError("an unused member has no exclusion reason")
    return np.where(used, NO_EXCLUSION, codes)


@dataclass
class ExplanationInputs:
    """What the explanation of a batch's rows is built from (arrays of n rows, m members).

    Attributes
    ----------
    level : str, ExplainLevel or None
        ``none``, ``summary`` (default for ``None``) or ``full``.
    member_names : sequence of str, length m
        Member names in column order.
    member_proba : array-like of shape (n, m)
        Members' positive-class probabilities (NaN where a member did not run).
    used : array-like of shape (n, m), bool
        Whether each member contributed to the row.
    exclusion : array-like of shape (n, m)
        Integer codes (index in :data:`EXCLUSION_CODES`, -1 = none) or reason names /
        ``None``; ignored where ``used``, required where not.
    weights : array-like of shape (n, m)
        Member weights as the combiner applied them (0 for unused members).
    baseline : array-like of shape (n,)
        Combiner-space baseline.
    contributions : array-like of shape (n, m)
        Per-member contributions in the combiner space (0 for unused members).
    space : str
        Name of the combiner space (e.g. ``"probability"``, ``"log_odds"``).
    agreement : array-like of shape (n,)
        Fraction of members agreeing with the decision.
    cache_hit : array-like of shape (n,), bool
        Whether the row's score came from the prediction cache.
    selection_id : str or sequence of str (length n)
        Identifier of the member selection (one for the batch, or one per row).
    feature_attribution : list of dict, length n, optional
        Per-row feature attribution, included at level ``full``.
    """

    level: str | ExplainLevel | None
    member_names: Sequence[str]
    member_proba: npt.ArrayLike
    used: npt.ArrayLike
    exclusion: npt.ArrayLike
    weights: npt.ArrayLike
    baseline: npt.ArrayLike
    contributions: npt.ArrayLike
    space: str
    agreement: npt.ArrayLike
    cache_hit: npt.ArrayLike
    selection_id: str | Sequence[str]
    feature_attribution: list[dict[str, Any]] | None = None

    def take(self, rows: npt.NDArray[np.int64]) -> ExplanationInputs:
        """The same inputs for ``rows`` only (positions, shape (k,)), in that order."""
        idx = rows.tolist()
        sel = self.selection_id
        return replace(
            self, member_proba=np.asarray(self.member_proba)[rows], used=np.asarray(self.used)[rows],
            exclusion=np.asarray(self.exclusion)[rows], weights=np.asarray(self.weights)[rows],
            baseline=np.asarray(self.baseline)[rows], contributions=np.asarray(self.contributions)[rows],
            agreement=np.asarray(self.agreement)[rows], cache_hit=np.asarray(self.cache_hit)[rows],
            selection_id=sel if isinstance(sel, str) else [sel[i] for i in idx],
            feature_attribution=None if self.feature_attribution is None else [self.feature_attribution[i] for i in idx],
        )


def build_explanations(inputs: ExplanationInputs) -> list[dict[str, Any] | None]:
    """Build the JSON-ready explanation of every row of a batch (see the module docstring).

    Parameters
    ----------
    inputs : ExplanationInputs
        Member arrays of shape (n, m), row arrays of shape (n,).

    Returns
    -------
    list of (dict or None), length n
        One payload per row; ``None`` for every row at level ``none``.

    Raises
    ------
    ConfigError
        For an unknown level or exclusion reason name.
    CombinerError
        On inconsistent shapes, an out-of-range exclusion code or an unused member without a
        reason.
    """
    prep = prepare_explanations(inputs)
    space = inputs.space
    if prep is None:
        proba = np.asarray(inputs.member_proba)
        return [None] * (proba.shape[0] if proba.ndim == 2 else 0)
    names, n = prep.names, prep.n
    names_arr = np.array([r.value for r in EXCLUSION_CODES] + [None], dtype=object)
    # Code -1 indexes the trailing None; used members always report None.
    reasons: list[list[str | None]] = names_arr[prep.codes].tolist()
    p_l, w_l, c_l = json_list(prep.proba), json_list(prep.weights), json_list(prep.contributions)
    base_l, score_l, agree_l = json_list(prep.baseline), json_list(prep.score), json_list(prep.agreement)
    use_l, hit_l, order_l = prep.used.tolist(), prep.cache_hit.tolist(), prep.order.tolist()
    n_top = prep.n_top.tolist()
    sel = prep.selection_id
    out: list[dict[str, Any] | None] = []
    for i in range(n):
        c_i = c_l[i]
        members = [
            {"model": name, "used": u, "reason": r, "proba": p, "weight": wt, "contribution": c}
            for name, u, r, p, wt, c in zip(names, use_l[i], reasons[i], p_l[i], w_l[i], c_i)
        ]
        top = [{"model": names[j], "contribution": c_i[j]} for j in order_l[i][: n_top[i]]]
        payload: dict[str, Any] = {
            "members": members,
            "baseline": base_l[i],
            "space": space,
            "score": score_l[i],
            "agreement": agree_l[i],
            "cache_hit": hit_l[i],
            "selection_id": sel if isinstance(sel, str) else sel[i],
            "top": top,
        }
        if prep.full:
            payload["feature_attribution"] = (
                None if prep.feature_attribution is None else prep.feature_attribution[i]
            )
        out.append(payload)
    return out


@dataclass
class PreparedExplanations:
    """Validated explanation inputs of a batch and what both encoders derive from them.

    Attributes
    ----------
    n, m : int
        Rows and members.
    names : list of str, length m
    proba, weights, contributions : ndarray of shape (n, m)
    used : ndarray of bool, shape (n, m)
    codes : ndarray of int, shape (n, m)
        Exclusion codes with ``NO_EXCLUSION`` (-1) for used members.
    baseline, score, agreement : ndarray of shape (n,)
        ``score`` = baseline + the used members' contributions, before rounding.
    cache_hit : ndarray of bool, shape (n,)
    order : ndarray of int, shape (n, min(m, TOP_K))
        Member columns by decreasing ``|contribution|``, used members first.
    n_top : ndarray of int, shape (n,)
        How many of ``order`` are listed under ``top``.
    selection_id : str or list of str (length n)
    full : bool
    feature_attribution : list of dict or None
    """

    n: int
    m: int
    names: list[str]
    proba: FloatArray
    weights: FloatArray
    contributions: FloatArray
    used: npt.NDArray[np.bool_]
    codes: npt.NDArray[np.int64]
    baseline: FloatArray
    score: FloatArray
    agreement: FloatArray
    cache_hit: npt.NDArray[np.bool_]
    order: npt.NDArray[np.int64]
    n_top: npt.NDArray[np.int64]
    selection_id: str | list[str]
    full: bool
    feature_attribution: list[dict[str, Any]] | None


def prepare_explanations(inputs: ExplanationInputs) -> PreparedExplanations | None:
    """Validate the inputs of :func:`build_explanations` (same errors).

    Parameters
    ----------
    inputs : ExplanationInputs

    Returns
    -------
    PreparedExplanations or None
        ``None`` at level ``none``.
    """
    lvl = parse_explain_level(inputs.level)
    proba = np.asarray(inputs.member_proba, dtype=np.float64)
    n = proba.shape[0] if proba.ndim == 2 else -1
    if lvl is ExplainLevel.NONE:
        return None
    names = list(inputs.member_names)
    m = len(names)
    use = np.asarray(inputs.used, dtype=bool)
    w = np.asarray(inputs.weights, dtype=np.float64)
    contrib = np.asarray(inputs.contributions, dtype=np.float64)
    base = np.asarray(inputs.baseline, dtype=np.float64).reshape(-1)
    agree = np.asarray(inputs.agreement, dtype=np.float64).reshape(-1)
    hits = np.asarray(inputs.cache_hit, dtype=bool).reshape(-1)
    selection_id, feature_attribution = inputs.selection_id, inputs.feature_attribution
    for arr in (proba, use, w, contrib):
        if arr.shape != (n, m):
            raise CombinerError(f"expected ({n}, {m}) member arrays, got {arr.shape}")
    for arr in (base, agree, hits):
        if arr.shape != (n,):
            raise CombinerError(f"expected ({n},) row arrays, got {arr.shape}")
    sel: str | list[str] = selection_id if isinstance(selection_id, str) else list(selection_id)
    if not isinstance(sel, str) and len(sel) != n:
        raise CombinerError(f"{len(sel)} selection ids for {n} rows")
    full = lvl is ExplainLevel.FULL
    if full and feature_attribution is not None and len(feature_attribution) != n:
        raise CombinerError(f"{len(feature_attribution)} feature attributions for {n} rows")
    codes = _codes(inputs.exclusion, use)
    score = base + np.where(use, contrib, 0.0).sum(axis=1)
    # Unused members sort last (key -1 < any |contribution|); stable sort keeps member order.
    key = np.where(use, np.abs(contrib), -1.0)
    order = np.argsort(-key, axis=1, kind="stable")[:, :TOP_K]
    n_top = np.minimum(use.sum(axis=1), TOP_K)
    return PreparedExplanations(n, m, names, proba, w, contrib, use, codes, base, score, agree, hits, order,
                                n_top, sel, full, feature_attribution if full else None)


class DecidedClassContributions:
    """K-class member contributions: each member's weighted probability of the decided class.

    With K > 2 classes there is no single positive-class score to decompose. The explanation
    is about the class the ensemble decided: member ``j`` contributes ``w_j * p_j[decided]``
    in ``probability`` space with baseline 0, so ``score`` is the weighted mean probability of
    that class. This equals the combined probability exactly for soft voting and weighted
    averaging; for stacking and the geometric mean it is the members' weighted evidence, not
    the meta-learner's output (the event's ``probabilities`` carry that).

    Attributes
    ----------
    baseline : ndarray of shape (n,)
    values : ndarray of shape (n, n_models)
    space : str
        ``"probability_of_decided_class"``.
    """

    space = "probability_of_decided_class"

    def __init__(self, baseline: FloatArray, values: FloatArray) -> None:
        self.baseline = baseline
        self.values = values


def decided_class_contributions(P: npt.ArrayLike, weights: npt.ArrayLike, decision: npt.ArrayLike) -> DecidedClassContributions:
    """Contributions of every member to the decided class (see :class:`DecidedClassContributions`).

    Parameters
    ----------
    P : array-like of shape (n, n_models, n_classes)
        Member probabilities (NaN where a member did not run).
    weights : array-like of shape (n, n_models)
        Effective weights (0 for unused members).
    decision : array-like of int, shape (n,)

    Returns
    -------
    DecidedClassContributions
    """
    proba = np.asarray(P, dtype=np.float64)
    dec = np.asarray(decision, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    p_dec = proba[np.arange(proba.shape[0]), :, dec]
    values = np.where(w > 0, w * np.nan_to_num(p_dec), 0.0)
    return DecidedClassContributions(np.zeros(proba.shape[0]), values)
