"""Forests served without per-call overhead: the same probabilities as scikit-learn, faster.

``RandomForestClassifier.predict_proba`` / ``ExtraTreesClassifier.predict_proba`` validate the
input once per tree and accumulate through a joblib loop: on the 100-tree default members that
is a fixed ~14 ms per call at any batch size, most of a 1,000-row batch's scoring time.
:class:`FlatForest` keeps each tree's leaf probabilities (normalised exactly as
``DecisionTreeClassifier.predict_proba`` does), finds the leaves with each tree's compiled
``apply`` on one float32 copy of the batch, and sums the trees in the forest's order, so the
result equals scikit-learn's bit for bit (tests/unit/test_flat_forest.py checks to 1e-12).

The registry keeps the scikit-learn estimator; :func:`served_form` compiles it at load time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from stream_ensemble.types import Matrix


class FlatForest:
    """A fitted single-output forest classifier's ``predict_proba`` without the per-tree checks.

    Parameters
    ----------
    forest : RandomForestClassifier or ExtraTreesClassifier
        Fitted, single output (``n_outputs_ == 1``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    forest : the wrapped estimator (kept for anything else callers read from it)
    """

    def __init__(self, forest: Any) -> None:
        self.forest = forest
        self.classes_ = forest.classes_
        self.n_features_in_ = forest.n_features_in_
        n_classes = int(forest.n_classes_)
        self._trees = []
        for est in forest.estimators_:
            # DecisionTreeClassifier.predict_proba: value[:, 0, :n_classes] / row sum (0 -> 1)
            leaf = np.array(est.tree_.value[:, 0, :n_classes], dtype=np.float64)
            norm = leaf.sum(axis=1)[:, None]
            norm[norm == 0.0] = 1.0
            leaf /= norm
            self._trees.append((est.tree_, leaf))

    def predict_proba(self, X: Matrix) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes), equal to the forest's.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features)
        """
        X32 = np.ascontiguousarray(X, dtype=np.float32)  # the dtype every sklearn tree compares in
        if X32.ndim != 2 or X32.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X32.shape}, expected (n, {self.n_features_in_})")
        out = np.zeros((X32.shape[0], len(self.classes_)), dtype=np.float64)
        for tree, leaf in self._trees:
            out += leaf[tree.apply(X32)]
        out /= len(self._trees)
        return out

    def __getstate__(self) -> dict[str, Any]:
        # Never persisted in compiled form: pickling keeps the plain estimator only.
        return {"forest": self.forest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["forest"])  # type: ignore[misc]


def served_form(estimator: Any) -> Any:
    """The form a member is served in: a :class:`FlatForest` for single-output scikit-learn
    random forests and extra-trees, the estimator itself otherwise."""
    if (type(estimator) in (RandomForestClassifier, ExtraTreesClassifier)
            and getattr(estimator, "n_outputs_", 0) == 1 and hasattr(estimator, "estimators_")):
        return FlatForest(estimator)
    return estimator
