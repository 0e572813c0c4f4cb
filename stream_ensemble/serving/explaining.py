"""Explanation inputs of a scored batch, per level: which members are listed, why each unused
one was left out, and (level ``full``) the occlusion attribution that re-runs the members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from stream_ensemble.core.confidence import ExclusionReason, ExplanationInputs, exclusion_code, occlusion_attribution
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.guard import BREAKER_OPEN, MemberGuard
from stream_ensemble.core.members.pool import ModelPool
from stream_ensemble.serving.score_batch import ExplanationGroup
from stream_ensemble.types import Mask, Matrix


class Explained(Protocol):
    """What the explanations need of the ensemble (:class:`~.ensemble.ServingEnsemble`)."""

    strategy: Any
    pool: ModelPool
    member_tags: list[str]
    encoder: FeatureEncoder
    reference_: np.ndarray

    def listed_members(self, run: np.ndarray) -> np.ndarray: ...

    def rescore(self, Z: Matrix, healthy: np.ndarray, run: np.ndarray, guard: MemberGuard | None) -> np.ndarray: ...


@dataclass
class ScoredArrays:
    """What ``ServingEnsemble.score`` computed for a batch that its explanations use.

    Attributes
    ----------
    X : ndarray of shape (n, n_features)
    pool_run : PoolRun
        The members' outputs (``proba`` (n, m, c), ``ok`` (n, m), ``failed``).
    run : ndarray of shape (m,), bool
        Members called on the batch.
    missing : dict of int to str
        Members of the selection skipped before the call (breaker open, still busy).
    used, available : ndarray of shape (n, m), bool
    healthy : ndarray of shape (m,), bool
    weights : ndarray of shape (n, m)
    contrib : object with ``baseline`` (n,), ``values`` (n, m) and ``space``
    unc : Uncertainty
    selection_id : str
    member_positive : ndarray of shape (n, m)
    binary : bool
    """

    X: Matrix
    pool_run: Any
    run: np.ndarray
    missing: dict[int, str]
    used: Mask
    available: Mask
    healthy: np.ndarray
    weights: np.ndarray
    contrib: Any
    unc: Any
    selection_id: str
    member_positive: np.ndarray
    binary: bool


def explanation_groups(ens: Explained, levels: list[str], a: ScoredArrays,
                       guard: MemberGuard | None) -> list[ExplanationGroup]:
    """One group per explanation level present among ``levels`` (``none`` rows are in none).

    Parameters
    ----------
    ens : Explained
        The ensemble (a :class:`~.ensemble.ServingEnsemble`).
    levels : list of str, length n
    a : ScoredArrays
    guard : MemberGuard, optional
        Deadlines for the occlusion re-runs of level ``full``.

    Returns
    -------
    list of ExplanationGroup
    """
    groups: list[ExplanationGroup] = []
    if all(lv == "none" for lv in levels):
        return groups
    pool_run, healthy = a.pool_run, a.healthy
    reasons = np.asarray(ens.strategy.exclusion_reasons(healthy, a.available, a.X))
    # Pool-level failures are more specific than the strategy's view of "not available".
    for name, why in pool_run.failed.items():
        j = ens.pool.names.index(name)
        code = exclusion_code(ExclusionReason.TIMED_OUT if why.startswith("timed_out") else ExclusionReason.FAILED)
        reasons[~pool_run.ok[:, j] & healthy[j], j] = code
    for j, why in a.missing.items():  # skipped before the call: breaker open, or still busy
        code = exclusion_code(ExclusionReason.BREAKER_OPEN if why == BREAKER_OPEN else ExclusionReason.TIMED_OUT)
        reasons[~pool_run.ok[:, j] & healthy[j], j] = code
    cols = np.flatnonzero(ens.listed_members(a.run))
    ran = a.run & pool_run.ok.any(axis=0)  # occlusion re-runs only members that answered
    tags = [ens.member_tags[j] for j in cols]
    baseline, values = np.asarray(a.contrib.baseline), np.asarray(a.contrib.values)
    for level in ("summary", "full"):
        rows = np.flatnonzero(np.array([lv == level for lv in levels], dtype=bool))
        if rows.size == 0:
            continue
        attribution = None
        if level == "full" and a.binary:
            occ = occlusion_attribution(
                lambda Z: ens.rescore(Z, healthy, ran, guard),
                a.X[rows], ens.reference_, ens.encoder.output_names_,
            )
            attribution = occ.to_dicts(top_k=10)
        sub = np.ix_(rows, cols)
        groups.append(ExplanationGroup(rows, ExplanationInputs(
            level=level, member_names=tags, member_proba=a.member_positive[sub], used=a.used[sub],
            exclusion=reasons[sub], weights=a.weights[sub], baseline=baseline[rows], contributions=values[sub],
            space=a.contrib.space, agreement=a.unc.agreement[rows], cache_hit=np.zeros(rows.size, dtype=bool),
            selection_id=a.selection_id, feature_attribution=attribution,
        )))
    return groups
