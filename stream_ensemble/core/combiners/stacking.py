"""Stacking: a meta-learner on member log-odds, trained on out-of-fold predictions."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from stream_ensemble.core.combiners._base import (
    EPS,
    Combiner,
    CombinerName,
    FloatArray,
    Link,
    LogisticLink,
    clipped_log_odds,
    empty_rows,
)
from stream_ensemble.errors import CombinerError
from stream_ensemble.types import Labels, Mask, Matrix, Proba


def out_of_fold_proba(estimators: list[Any], X: Matrix, y: Labels, *, cv: int = 5,
                      random_state: int | None = None) -> Proba:
    """Out-of-fold member probabilities for fitting a stacker, shape (n, n_models, n_classes).

    Each row's prediction comes from a clone of the member fit on the other folds, so no
    member ever predicts a row it was trained on.

    Parameters
    ----------
    estimators : list of sklearn classifiers
        Unfitted (they are cloned) members with ``predict_proba``.
    X : ndarray of shape (n_events, n_features)
    y : ndarray of int, shape (n_events,)
    cv : int, default=5
        Number of stratified folds.
    random_state : int or None
        Seed of the fold shuffle.

    Returns
    -------
    ndarray of shape (n_events, n_models, n_classes)

    Raises
    ------
    ValueError
        From scikit-learn if a member cannot be fit.
    """
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    preds = [cross_val_predict(clone(est), X, y, cv=folds, method="predict_proba")
             for est in estimators]
    return np.stack(preds, axis=1).astype(np.float64)


#: Inverse regularisation strengths the default meta-learner chooses among (inner CV).
META_CS = (0.01, 0.1, 1.0, 10.0)


# scikit-learn 1.8+ warns unless the (plain L2) penalty mix and the attribute layout are explicit.
_LRCV_QUIET: dict[str, Any] = (
    {"l1_ratios": (0.0,), "use_legacy_attributes": False}
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters else {})


def default_meta_learner(y: Labels) -> Any:
    """Logistic regression whose regularisation is chosen by 3-fold CV log loss on the fit rows.

    With many members (and ``n_models * n_classes`` log-probability features for K classes) a
    fixed ``C=1`` meta-learner separates a few hundred OOF rows perfectly and serves near-0
    probabilities to the true class of a new row: on one 178-row, 3-class dataset a single
    such row made the stacking's test log loss 0.39 against 0.01 for a plain average. The CV
    picks a stronger penalty there and a weak one on large data. Fewer than 3 rows of some
    class: plain ``C=1``.
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64))
    if counts.size < 2 or counts[counts > 0].min() < 3:
        return LogisticRegression(max_iter=1000)
    return LogisticRegressionCV(Cs=list(META_CS), cv=StratifiedKFold(3, shuffle=True, random_state=0),
                                scoring="neg_log_loss", max_iter=1000, **_LRCV_QUIET)


class Stacking(Combiner):
    """Meta-learner (default logistic regression) on member log-odds features.

    Training data MUST be out-of-fold: ``fit(P_oof, y, mask)`` receives member predictions made
    by cross-validation (see :func:`out_of_fold_proba`); the caller guarantees it. It must never
    receive predictions for rows the members were fit on, or the meta-learner learns to trust
    overfit members.

    Features: for two classes, member j's clipped log-odds ``log p_j1 - log p_j0`` (one column
    per member); for more classes, the clipped log-probabilities (``n_models * n_classes``
    columns). A missing member's feature is imputed with its mean over the fit rows where it
    was present (0 if it never was), so with a linear meta-learner it adds exactly nothing
    relative to the baseline. Rows without any member get the fitted class prior.

    Contributions (log-odds space, binary, linear meta-learner with ``coef_`` and
    ``intercept_`` and a logistic link, such as the default): baseline
    ``intercept + sum_j coef_j mean_j``, member j adds ``coef_j (f_j - mean_j)``, 0 if absent.

    Parameters
    ----------
    meta_learner : sklearn classifier, optional
        Cloned in ``fit``; default :func:`default_meta_learner` (logistic regression, penalty
        chosen by inner CV).

    Attributes
    ----------
    meta_learner_ : fitted classifier
    feature_means_ : ndarray of shape (n_features,)
        Imputation values for missing members.
    """

    name: ClassVar[CombinerName] = CombinerName.STACKING
    space: ClassVar[str] = "log_odds"

    def __init__(self, meta_learner: Any | None = None) -> None:
        self.meta_learner = meta_learner

    @staticmethod
    def _features(P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        n, m, c = P.shape
        if c == 2:
            return clipped_log_odds(P), mask
        logs = np.log(np.clip(P, EPS, 1.0 - EPS)).reshape(n, m * c)
        return logs, np.repeat(mask, c, axis=1)

    def _imputed(self, P: Proba, mask: Mask) -> FloatArray:
        feats, present = self._features(P, mask)
        return np.where(present, feats, self.feature_means_[None, :])

    def _fit(self, P: Proba, y: Labels, mask: Mask) -> None:
        feats, present = self._features(P, mask)
        counts = present.sum(axis=0)
        sums = np.where(present, feats, 0.0).sum(axis=0)
        self.feature_means_ = np.divide(sums, counts, out=np.zeros(sums.shape), where=counts > 0)
        keep = mask.any(axis=1)
        meta = clone(self.meta_learner if self.meta_learner is not None else default_meta_learner(y[keep]))
        meta.fit(self._imputed(P, mask)[keep], y[keep])
        if not np.array_equal(np.asarray(meta.classes_), np.arange(P.shape[2])):
            raise CombinerError("the meta-learner did not see every class in rows with members")
        self.meta_learner_ = meta

    def _combine(self, P: Proba, mask: Mask) -> tuple[FloatArray, Mask]:
        out = np.asarray(self.meta_learner_.predict_proba(self._imputed(P, mask)), np.float64)
        return out, empty_rows(mask)

    def _linear(self) -> tuple[FloatArray, float]:
        coef = getattr(self.meta_learner_, "coef_", None)
        intercept = getattr(self.meta_learner_, "intercept_", None)
        if coef is None or intercept is None:
            raise CombinerError("contributions need a linear meta-learner with coef_ and "
                                "intercept_ (e.g. LogisticRegression)")
        return np.asarray(coef, np.float64).ravel(), float(np.asarray(intercept).ravel()[0])

    def _decompose(self, P: Proba, mask: Mask) -> tuple[FloatArray, FloatArray, Link, Mask]:
        coef, intercept = self._linear()
        centred = self._imputed(P, mask) - self.feature_means_
        baseline = np.full(P.shape[0], intercept + coef @ self.feature_means_, dtype=np.float64)
        return baseline, np.asarray(centred * coef, np.float64), LogisticLink(), empty_rows(mask)

    def _member_importance(self, n_models: int) -> FloatArray:
        coef = getattr(self.meta_learner_, "coef_", None)
        if coef is None:
            return np.ones(n_models)
        # Multiclass: coef is (n_classes, n_models * n_classes); sum |coef| per member.
        magnitude = np.abs(np.asarray(coef, dtype=np.float64))
        return np.asarray(magnitude.reshape(magnitude.shape[0], n_models, -1).sum(axis=(0, 2)))
