"""What scoring one batch gives: :class:`ScoreBatch` (every array of n rows) and its explanation
groups, and :func:`splice` that puts the re-scored rows of a fallback back into a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_ensemble.core.confidence import ExplanationInputs, build_explanations
from stream_ensemble.core.confidence.explanation_json import explanation_parts
from stream_ensemble.core.confidence.json_bytes import Part, join_rows
from stream_ensemble.types import Mask


@dataclass
class ExplanationGroup:
    """The rows of a batch at one explanation level and the inputs that explain them.

    Attributes
    ----------
    rows : ndarray of int, shape (k,)
        Row positions in the batch.
    inputs : ExplanationInputs
        For :func:`build_explanations` / :func:`explanation_parts`: arrays of those k rows
        (member arrays restricted to the members listed).
    """

    rows: np.ndarray
    inputs: ExplanationInputs


@dataclass
class ScoreBatch:
    """Scores of one batch; every array has n_events rows.

    Attributes
    ----------
    proba : ndarray of shape (n, n_classes)
        Calibrated class probabilities.
    raw_positive : ndarray of shape (n,)
        Positive-class probability before calibration (K > 2: of the decided class).
    decision : ndarray of shape (n,), int
    confidence : ndarray of shape (n,)
    prediction_set : ndarray of shape (n, n_classes), bool
    member_positive : ndarray of shape (n, n_models)
        Each member's positive-class probability (K > 2: of the decided class), NaN where it
        did not run.
    member_proba : ndarray of shape (n, n_models, n_classes)
        Each member's class probabilities, NaN where it did not run.
    used : ndarray of shape (n, n_models), bool
    uncertainty : dict of str to ndarray of shape (n,)
    explain : list of ExplanationGroup
        Explanation inputs per level (rows at level ``none`` are in no group): encoded by
        :meth:`explanation_parts`, as dicts by :attr:`explanations`.
    selection_id : str
    failed : dict of str to str
        Members that failed on this batch and why.
    degraded : ndarray of shape (n,), int
        Degraded reason code per row (``serving.degraded.DEGRADED_REASONS``; -1: not degraded).
    """

    proba: np.ndarray
    raw_positive: np.ndarray
    decision: np.ndarray
    confidence: np.ndarray
    prediction_set: np.ndarray
    member_positive: np.ndarray
    member_proba: np.ndarray
    used: Mask
    uncertainty: dict[str, np.ndarray]
    explain: list[ExplanationGroup]
    selection_id: str
    failed: dict[str, str]
    degraded: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def explanations(self) -> list[dict[str, Any] | None]:
        """Every row's explanation as a dict (``None`` at level ``none``): the readable form."""
        out: list[dict[str, Any] | None] = [None] * self.proba.shape[0]
        for group in self.explain:
            for i, e in zip(group.rows.tolist(), build_explanations(group.inputs)):
                out[i] = e
        return out

    def explanation_parts(self) -> list[Part]:
        """Every row's explanation, encoded, as template parts for :func:`join_rows`.

        One level for the whole batch (the usual case) gives the explanation's own template,
        spliced into the caller's; mixed levels give one column of encoded rows.
        """
        n = self.proba.shape[0]
        groups = [(g.rows, explanation_parts(g.inputs)) for g in self.explain]
        if len(groups) == 1 and groups[0][0].shape[0] == n and groups[0][1] is not None:
            return groups[0][1]
        column = [b"null"] * n
        for rows, parts in groups:
            if parts is not None:
                for i, e in zip(rows.tolist(), join_rows(rows.shape[0], parts)):
                    column[i] = e
        return [column]


def splice(batch: ScoreBatch, sub: ScoreBatch, rows: np.ndarray) -> None:
    """Put ``sub`` (the scores of ``batch``'s ``rows``, in that order) into ``batch``, in place."""
    for name in ("proba", "raw_positive", "decision", "confidence", "prediction_set", "member_positive",
                 "member_proba", "used", "degraded"):
        getattr(batch, name)[rows] = getattr(sub, name)
    for key, values in sub.uncertainty.items():
        batch.uncertainty[key][rows] = values
    drop = np.zeros(batch.proba.shape[0], dtype=bool)
    drop[rows] = True
    kept: list[ExplanationGroup] = []
    for group in batch.explain:
        keep = np.flatnonzero(~drop[group.rows])
        if keep.size == group.rows.size:
            kept.append(group)
        elif keep.size:
            kept.append(ExplanationGroup(group.rows[keep], group.inputs.take(keep)))
    kept += [ExplanationGroup(rows[g.rows], g.inputs) for g in sub.explain]
    batch.explain = kept
    batch.failed = {**sub.failed, **batch.failed}
