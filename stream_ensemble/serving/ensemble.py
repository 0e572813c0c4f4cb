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

from dataclasses import dataclass
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
from stream_ensemble.core.confidence.uncertainty import DEFAULT_CONFIDENCE, confidence, uncertainty
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.pool import ModelPool
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
    explanations : list of (dict or None), length n
    selection_id : str
    failed : dict of str to str
        Members that failed on this batch and why.
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
    explanations: list[dict[str, Any] | None]
    selection_id: str
    failed: dict[str, str]


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
        self, X: Matrix, healthy: np.ndarray, explain: list[str] | str = "summary"
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

        Returns
        -------
        ScoreBatch
        """
        n = X.shape[0]
        run = self.strategy.required_members(healthy)
        pool_run = self.pool.proba(X, run)
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
        explanations = self._explain(explain, n, X, pool_run, used, available, healthy, weights, contrib, unc,
                                     selection_id, member_positive, proba.shape[1] == 2)
        return ScoreBatch(
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
            explanations=explanations,
            selection_id=selection_id,
            failed=pool_run.failed,
        )

    def _explain(
        self, explain: list[str] | str, n: int, X: Matrix, pool_run: Any, used: Mask,
        available: Mask, healthy: np.ndarray, weights: np.ndarray, contrib: Any, unc: Any,
        selection_id: str, member_positive: np.ndarray, binary: bool,
    ) -> list[dict[str, Any] | None]:
        levels = [explain] * n if isinstance(explain, str) else list(explain)
        out: list[dict[str, Any] | None] = [None] * n
        if all(lv == "none" for lv in levels):
            return out
        reasons = np.asarray(self.strategy.exclusion_reasons(healthy, available, X))
        # Pool-level failures are more specific than the strategy's view of "not available".
        for name, why in pool_run.failed.items():
            j = self.pool.names.index(name)
            code = exclusion_code(ExclusionReason.TIMED_OUT if why.startswith("timed_out") else ExclusionReason.FAILED)
            reasons[~pool_run.ok[:, j] & healthy[j], j] = code
        for level in ("summary", "full"):
            rows = np.array([lv == level for lv in levels], dtype=bool)
            if not rows.any():
                continue
            attribution = None
            if level == "full" and binary:
                occ = occlusion_attribution(
                    lambda Z: self._combine(*self._run_for(Z, healthy), Z)[1],
                    X[rows], self.reference_, self.encoder.output_names_,
                )
                attribution = occ.to_dicts(top_k=10)
            built = build_explanations(
                level, self.member_tags, member_positive[rows], used[rows], reasons[rows],
                weights[rows], np.asarray(contrib.baseline)[rows], np.asarray(contrib.values)[rows],
                contrib.space, unc.agreement[rows], np.zeros(int(rows.sum()), dtype=bool),
                selection_id, attribution,
            )
            for i, e in zip(np.flatnonzero(rows), built):
                out[i] = e
        return out

    def _run_for(self, Z: Matrix, healthy: np.ndarray) -> tuple[Proba, Mask]:
        run = self.strategy.required_members(healthy)
        r = self.pool.proba(Z, run)
        return r.proba, r.ok & healthy[None, :]

