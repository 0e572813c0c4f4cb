"""The serving ensemble: encoder + pool + strategy + calibrator + conformal + explainer.

``ServingEnsemble.score(X, healthy)`` is the whole scoring path of one batch, with no I/O:

1. the strategy says which members must run given the healthy set (re-selection on health
   change happens inside the strategy, memoised per healthy set);
2. the pool runs each of those members once on the whole batch (failures isolated);
3. the strategy combines what is present for each row (renormalising over missing members);
4. the calibrator maps the combined probability, the conformal predictor gives the set;
5. uncertainty, confidence and the explanation are derived from the same arrays
   (:mod:`.explaining`; the result is a :class:`~.score_batch.ScoreBatch`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from stream_ensemble.core.confidence.calibration import CLIP
from stream_ensemble.core.confidence.explanation import decided_class_contributions
from stream_ensemble.core.confidence.uncertainty import DEFAULT_CONFIDENCE, confidence, uncertainty
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.breaker import OPEN
from stream_ensemble.core.members.guard import MemberGuard
from stream_ensemble.core.members.pool import ModelPool
from stream_ensemble.serving.degraded import (
    DEGRADED_REASONS,
    NOT_DEGRADED,
    PRIOR_ONLY,
    guarded_run,
    member_ranking,
    row_reasons,
)
from stream_ensemble.serving.explaining import ScoredArrays, explanation_groups
from stream_ensemble.serving.score_batch import ExplanationGroup, ScoreBatch, splice
from stream_ensemble.types import Mask, Matrix, Proba

__all__ = ["ExplanationGroup", "ScoreBatch", "ServingEnsemble", "Strategy"]


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
        levels = [explain] * n if isinstance(explain, str) else list(explain)
        explain_groups = explanation_groups(self, levels, ScoredArrays(
            X, pool_run, run, g.missing, used, available, healthy, weights, contrib, unc, selection_id,
            member_positive, proba.shape[1] == 2), guard)
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
                sub = self.score(X[orphans], single, [levels[i] for i in orphans], guard, fallback=False)
                # Still degraded: the healthy selection did not serve them (why it missed).
                prior = DEGRADED_REASONS.index(PRIOR_ONLY)
                why = np.where(missed[orphans] == NOT_DEGRADED, prior, missed[orphans])
                sub.degraded = np.where(sub.degraded == prior, prior, why)
                splice(batch, sub, orphans)
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

    def rescore(self, Z: Matrix, healthy: np.ndarray, run: np.ndarray, guard: MemberGuard | None) -> np.ndarray:
        """Calibrated, unclipped output of members ``run`` on rows ``Z`` (occlusion re-runs).

        Parameters
        ----------
        Z : ndarray of shape (k, n_features)
        healthy, run : ndarray of shape (n_models,), bool
        guard : MemberGuard, optional

        Returns
        -------
        ndarray of shape (k,) (binary) or (k, n_classes)
        """
        if guard is None:
            r = self.pool.proba(Z, run)
        else:
            r = self.pool.proba(Z, run, guard.deadline_s or None, guard.threaded)
        return self._combine(r.proba, r.ok & healthy[None, :], Z)[1]
