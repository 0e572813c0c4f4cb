"""The serving ensemble: encoder + pool + strategy + calibrator + conformal + explainer.

``ServingEnsemble.score(X, healthy)`` is the whole scoring path of one batch, with no I/O:

1. the strategy says which members must run given the healthy set (re-selection on health
   change happens inside the strategy, memoised per healthy set);
2. the pool runs each of those members once on the whole batch (failures isolated);
3. the strategy combines what is present for each row (renormalising over missing members);
4. the calibrator maps the combined probability, the conformal predictor gives the set;
5. uncertainty, confidence and the explanation are derived from the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from stream_ensemble.core.confidence import (
    ExclusionReason,
    build_explanations,
    exclusion_code,
    occlusion_attribution,
)
from stream_ensemble.core.confidence.calibration import CLIP
from stream_ensemble.core.confidence.explanation import decided_class_contributions
from stream_ensemble.core.confidence.explanation_json import explanation_parts
from stream_ensemble.core.confidence.json_bytes import Part, join_rows
from stream_ensemble.core.confidence.uncertainty import DEFAULT_CONFIDENCE, confidence, uncertainty
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.breaker import OPEN
from stream_ensemble.core.members.guard import BREAKER_OPEN, MemberGuard
from stream_ensemble.core.members.pool import ModelPool
from stream_ensemble.serving.degraded import (
    DEGRADED_REASONS,
    NOT_DEGRADED,
    PRIOR_ONLY,
    guarded_run,
    member_ranking,
    row_reasons,
)
from stream_ensemble.types import Mask, Matrix, Proba


class Strategy(Protocol):
    """What the serving path needs of a fitted strategy (see :mod:`stream_ensemble.core.strategies`)."""

    name: str
    member_names: list[str]

    def required_members(self, healthy: np.ndarray) -> np.ndarray: ...

    def used_mask(self, available: Mask, X: Matrix | None = None) -> Mask: ...

    def predict_proba(self, P: Proba, available: Mask, X: Matrix | None = None) -> np.ndarray: ...

    def contributions(self, P: Proba, available: Mask, X: Matrix | None = None) -> Any: ...

    def selection_id(self, healthy: np.ndarray) -> str: ...

    def effective_weights(self, available: Mask, X: Matrix | None = None) -> np.ndarray: ...

    def exclusion_reasons(self, healthy: np.ndarray, available: Mask, X: Matrix | None = None) -> np.ndarray: ...


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
            for i, e in zip(group.rows.tolist(), build_explanations(**group.args)):
                out[i] = e
        return out

    def explanation_parts(self) -> list[Part]:
        """Every row's explanation, encoded, as template parts for :func:`join_rows`.

        One level for the whole batch (the usual case) gives the explanation's own template,
        spliced into the caller's; mixed levels give one column of encoded rows.
        """
        n = self.proba.shape[0]
        groups = [(g.rows, explanation_parts(**g.args)) for g in self.explain]
        if len(groups) == 1 and groups[0][0].shape[0] == n and groups[0][1] is not None:
            return groups[0][1]
        column = [b"null"] * n
        for rows, parts in groups:
            if parts is not None:
                for i, e in zip(rows.tolist(), join_rows(rows.shape[0], parts)):
                    column[i] = e
        return [column]


_ROW_ARGS = ("member_proba", "used", "exclusion", "weights", "baseline", "contributions", "agreement", "cache_hit")


def _splice(batch: ScoreBatch, sub: ScoreBatch, rows: np.ndarray) -> None:
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
            args = dict(group.args)
            for key in _ROW_ARGS:
                args[key] = np.asarray(args[key])[keep]
            if args.get("feature_attribution") is not None:
                args["feature_attribution"] = [args["feature_attribution"][i] for i in keep.tolist()]
            kept.append(ExplanationGroup(group.rows[keep], args))
    kept += [ExplanationGroup(rows[g.rows], g.args) for g in sub.explain]
    batch.explain = kept
    batch.failed = {**sub.failed, **batch.failed}


@dataclass
class ExplanationGroup:
    """The rows of a batch at one explanation level and the arguments that explain them.

    Attributes
    ----------
    rows : ndarray of int, shape (k,)
        Row positions in the batch.
    args : dict
        Keyword arguments of :func:`build_explanations` / :func:`explanation_parts` for
        those rows (member arrays restricted to the members listed).
    """

    rows: np.ndarray
    args: dict[str, Any]


class ServingEnsemble:
    """Everything needed to score a batch of encoded rows.

    Parameters
    ----------
    name : str
        Ensemble name in the registry.
    version : int
        Ensemble version (part of every cache key and scored event).
    encoder : FeatureEncoder
    pool : ModelPool
    strategy : Strategy
    calibrator : object with ``transform(p (n,)) -> (n,)``, optional
    conformal : ConformalClassifier-like, optional
        ``predict_set(proba (n, c), u=...) -> (n, c) bool`` and ``tie_breaks(X) -> (n,) or None``.
    class_names : list of str
    confidence_measure : str
        Name in ``core.confidence.uncertainty.CONFIDENCE_MEASURES``.
    """

    def __init__(
        self,
        name: str,
        version: int,
        encoder: FeatureEncoder,
        pool: ModelPool,
        strategy: Strategy,
        calibrator: Any | None,
        conformal: Any | None,
        class_names: list[str],
        confidence_measure: str = str(DEFAULT_CONFIDENCE.value),
    ) -> None:
        self.name = name
        self.version = version
        self.encoder = encoder
        self.pool = pool
        self.strategy = strategy
        self.calibrator = calibrator
        self.conformal = conformal
        self.class_names = class_names
        self.confidence_measure = confidence_measure
        self.member_tags = [m.tag for m in pool.members]
        # Reference row for feature attribution: the encoder's medians, standardised.
        self.reference_ = np.zeros(encoder.n_outputs)
        self.reference_[: len(encoder.numeric)] = (encoder.median_ - encoder.mean_) / encoder.scale_
        self._base_selection: np.ndarray | None = None
        self._ranking: list[int] | None = None

    @property
    def tag(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"

    def health_vector(self, down: frozenset[str] | set[str]) -> np.ndarray:
        """Healthy members given names or ``name@vN`` tags marked down, shape (n_models,)."""
        return np.array(
            [m.name not in down and m.tag not in down for m in self.pool.members], dtype=bool
        )

    def _combine(self, P: Proba, available: Mask, X: Matrix) -> tuple[np.ndarray, np.ndarray]:
        """Raw combined probabilities (n, c) and the calibrated output, unclipped.

        The calibrated output is the positive class (n,) for a binary ensemble and the full
        matrix (n, c) for K > 2 classes (temperature scaling maps all classes at once).
        The calibration map runs once; :meth:`score` clips for the served probability and
        keeps the unclipped values for the conformal scores (clipping creates ties).
        """
        raw = self.strategy.predict_proba(P, available, X)
        if raw.shape[1] != 2:
            cal_k = self.calibrator.transform(raw, clip=False) if self.calibrator is not None else raw
            return raw, np.asarray(cal_k, dtype=np.float64)
        pos = raw[:, 1]
        cal = self.calibrator.transform(pos, clip=False) if self.calibrator is not None else pos
        return raw, np.asarray(cal, dtype=np.float64)

    def score(
        self, X: Matrix, healthy: np.ndarray, explain: list[str] | str = "summary",
        guard: MemberGuard | None = None, fallback: bool = True,
    ) -> ScoreBatch:
        """Score a batch.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
            Encoded rows (``encoder.transform_records``).
        healthy : ndarray of shape (n_models,), bool
            Members not marked down.
        explain : str or list of str (length n_events)
            Explanation level for the batch or per event: none, summary or full.
        guard : MemberGuard, optional
            Deadlines and breakers (``serving.degraded``); None runs the healthy selection
            inline.
        fallback : bool
            Rows no member scored are scored by the best remaining single member (on those
            rows alone) before falling back to the class prior.

        Returns
        -------
        ScoreBatch
            ``degraded`` says which rows missed a member of the healthy selection and why.
        """
        n = X.shape[0]
        g = guarded_run(self.pool, self.strategy, self.member_tags, X, healthy, guard)
        run, pool_run = g.run, g.pool_run
        available = pool_run.ok & healthy[None, :]
        raw, unclipped = self._combine(pool_run.proba, available, X)
        used = self.strategy.used_mask(available, X)
        weights = np.where(used, self.strategy.effective_weights(available, X), 0.0)
        if raw.shape[1] == 2:
            pos = np.clip(unclipped, CLIP, 1.0 - CLIP) if self.calibrator is not None else unclipped
            proba = np.column_stack([1.0 - pos, pos])
            set_proba = np.column_stack([1.0 - unclipped, unclipped])
            decision = (pos >= 0.5).astype(np.int64)
            contrib = self.strategy.contributions(pool_run.proba, available, X)
            member_positive = pool_run.proba[:, :, 1]
        else:
            proba = self.calibrator.transform(raw) if self.calibrator is not None else raw
            set_proba = unclipped
            decision = np.argmax(proba, axis=1).astype(np.int64)
            contrib = decided_class_contributions(pool_run.proba, weights, decision)
            member_positive = pool_run.proba[np.arange(n), :, decision]
        unc = uncertainty(pool_run.proba, used, weights, proba)
        conf = confidence(proba, unc, self.confidence_measure)
        sets = (
            self.conformal.predict_set(set_proba, u=self.conformal.tie_breaks(X))
            if self.conformal is not None
            else np.eye(proba.shape[1], dtype=bool)[decision]
        )
        selection_id = self.strategy.selection_id(healthy)
        degraded, missed = row_reasons(g, self.pool.names, used)
        conf = np.where(used.any(axis=1), conf, 0.0)  # the class prior alone is no confidence
        explain_groups = self._explain(explain, n, X, pool_run, used, available, healthy, weights, contrib, unc,
                                       selection_id, member_positive, proba.shape[1] == 2, run, g.missing, guard)
        batch = ScoreBatch(
            proba=proba,
            raw_positive=raw[:, 1] if raw.shape[1] == 2 else raw[np.arange(n), decision],
            decision=decision,
            confidence=conf,
            prediction_set=sets,
            member_positive=member_positive,
            member_proba=pool_run.proba,
            used=used,
            uncertainty={
                "member_std": unc.member_std,
                "total_entropy": unc.total_entropy,
                "aleatoric": unc.aleatoric,
                "epistemic": unc.epistemic,
                "agreement": unc.agreement,
            },
            explain=explain_groups,
            selection_id=selection_id,
            failed=pool_run.failed,
            degraded=degraded,
        )
        orphans = np.flatnonzero(~used.any(axis=1))
        if fallback and orphans.size:
            single = self._best_single(healthy & ~run, guard)
            if single is not None:
                levels = [explain] * n if isinstance(explain, str) else list(explain)
                sub = self.score(X[orphans], single, [levels[i] for i in orphans], guard, fallback=False)
                # Still degraded: the healthy selection did not serve them (why it missed).
                prior = DEGRADED_REASONS.index(PRIOR_ONLY)
                why = np.where(missed[orphans] == NOT_DEGRADED, prior, missed[orphans])
                sub.degraded = np.where(sub.degraded == prior, prior, why)
                _splice(batch, sub, orphans)
        return batch

    def _best_single(self, candidates: np.ndarray, guard: MemberGuard | None) -> np.ndarray | None:
        """Healthy vector of the best single member among ``candidates`` that may run, or None."""
        if self._ranking is None:
            self._ranking = member_ranking(self.strategy, len(self.pool.members))
        for j in self._ranking:
            if not candidates[j]:
                continue
            if guard is not None and (guard.breakers.state(self.member_tags[j]) == OPEN
                                      or (guard.deadline_s and guard.threads.busy(self.member_tags[j]))):
                continue
            single = np.zeros(len(self.pool.members), dtype=bool)
            single[j] = True
            return single
        return None

    def listed_members(self, run: np.ndarray) -> np.ndarray:
        """Members an explanation lists, shape (n_models,) bool: those that ran, and those the
        all-healthy selection runs (so a selected member marked down shows with its reason).

        Members the selection never uses are left out: with 8 of 10 members unselected they
        were two thirds of every scored event's bytes.
        """
        if self._base_selection is None:
            self._base_selection = np.asarray(
                self.strategy.required_members(np.ones(len(self.pool.members), dtype=bool)), dtype=bool)
        listed: np.ndarray = np.asarray(run, dtype=bool) | self._base_selection
        return listed

    def _explain(
        self, explain: list[str] | str, n: int, X: Matrix, pool_run: Any, used: Mask,
        available: Mask, healthy: np.ndarray, weights: np.ndarray, contrib: Any, unc: Any,
        selection_id: str, member_positive: np.ndarray, binary: bool, run: np.ndarray,
        missing: dict[int, str], guard: MemberGuard | None,
    ) -> list[ExplanationGroup]:
        levels = [explain] * n if isinstance(explain, str) else list(explain)
        groups: list[ExplanationGroup] = []
        if all(lv == "none" for lv in levels):
            return groups
        reasons = np.asarray(self.strategy.exclusion_reasons(healthy, available, X))
        # Pool-level failures are more specific than the strategy's view of "not available".
        for name, why in pool_run.failed.items():
            j = self.pool.names.index(name)
            code = exclusion_code(ExclusionReason.TIMED_OUT if why.startswith("timed_out") else ExclusionReason.FAILED)
            reasons[~pool_run.ok[:, j] & healthy[j], j] = code
        for j, why in missing.items():  # skipped before the call: breaker open, or still busy
            code = exclusion_code(ExclusionReason.BREAKER_OPEN if why == BREAKER_OPEN else ExclusionReason.TIMED_OUT)
            reasons[~pool_run.ok[:, j] & healthy[j], j] = code
        cols = np.flatnonzero(self.listed_members(run))
        ran = run & pool_run.ok.any(axis=0)  # occlusion re-runs only members that answered
        tags = [self.member_tags[j] for j in cols]
        baseline, values = np.asarray(contrib.baseline), np.asarray(contrib.values)
        for level in ("summary", "full"):
            rows = np.flatnonzero(np.array([lv == level for lv in levels], dtype=bool))
            if rows.size == 0:
                continue
            attribution = None
            if level == "full" and binary:
                occ = occlusion_attribution(
                    lambda Z: self._combine(*self._run_for(Z, healthy, ran, guard), Z)[1],
                    X[rows], self.reference_, self.encoder.output_names_,
                )
                attribution = occ.to_dicts(top_k=10)
            sub = np.ix_(rows, cols)
            groups.append(ExplanationGroup(rows, {
                "level": level, "member_names": tags, "member_proba": member_positive[sub], "used": used[sub],
                "exclusion": reasons[sub], "weights": weights[sub], "baseline": baseline[rows],
                "contributions": values[sub], "space": contrib.space, "agreement": unc.agreement[rows],
                "cache_hit": np.zeros(rows.size, dtype=bool), "selection_id": selection_id,
                "feature_attribution": attribution,
            }))
        return groups

    def _run_for(self, Z: Matrix, healthy: np.ndarray, run: np.ndarray, guard: MemberGuard | None) -> tuple[Proba, Mask]:
        if guard is None:
            r = self.pool.proba(Z, run)
        else:
            r = self.pool.proba(Z, run, guard.deadline_s or None, guard.threaded)
        return r.proba, r.ok & healthy[None, :]

