"""Outside baselines run on the same splits: scikit-learn stacking and DESlib KNORA-E."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import StackingClassifier

from stream_ensemble.core.members.families import ModelSpec

FloatArray = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@contextmanager
def deslib_shim() -> Iterator[None]:
    """Give ``BaseEstimator`` the ``_validate_data`` method DESlib 0.3.7 calls.

    scikit-learn 1.6 removed it; the forwarder to ``sklearn.utils.validation.validate_data`` is
    only in place inside the ``with`` block, so nothing outside the benchmark sees the patch.

    Yields
    ------
    None

    Raises
    ------
    None
    """
    from sklearn.utils.validation import validate_data

    had = "_validate_data" in BaseEstimator.__dict__
    if not had:
        def _validate_data(self: Any, *args: Any, **kwargs: Any) -> Any:
            return validate_data(self, *args, **kwargs)

        setattr(BaseEstimator, "_validate_data", _validate_data)
    try:
        yield
    finally:
        if not had:
            delattr(BaseEstimator, "_validate_data")


def fit_sklearn_stacking(specs: Sequence[ModelSpec], X_fit: FloatArray, y_fit: Labels) -> StackingClassifier:
    """scikit-learn's ``StackingClassifier`` over the pool specs (cv=5, predict_proba features).

    Parameters
    ----------
    specs : sequence of ModelSpec
        The same unfitted members the ensemble is built from.
    X_fit : ndarray of shape (n_fit, n_features)
    y_fit : ndarray of shape (n_fit,)

    Returns
    -------
    StackingClassifier
        Fitted, with the default ``LogisticRegression`` final estimator.

    Raises
    ------
    ValueError
        Propagated from scikit-learn on invalid input.
    """
    model = StackingClassifier(
        estimators=[(s.model_id, clone(s.estimator)) for s in specs],
        cv=5,
        stack_method="predict_proba",
        n_jobs=1,
    )
    return model.fit(X_fit, y_fit)


def deslib_knora_e_proba(
    estimators: Sequence[Any], X_dsel: FloatArray, y_dsel: Labels, X: FloatArray, random_state: int = 0
) -> FloatArray:
    """Fit DESlib's ``KNORAE`` over already fitted members and predict ``X``.

    Parameters
    ----------
    estimators : sequence of fitted classifiers
        The pool members (fitted on the fit part).
    X_dsel : ndarray of shape (n_dsel, n_features)
        Dynamic-selection data: the calibration-validation part (never trained on).
    y_dsel : ndarray of shape (n_dsel,)
    X : ndarray of shape (n, n_features)
        Rows to predict.
    random_state : int, default=0

    Returns
    -------
    ndarray of shape (n, n_classes)

    Raises
    ------
    ValueError
        Propagated from DESlib on invalid input.
    """
    from deslib.des import KNORAE

    with deslib_shim():
        model = KNORAE(pool_classifiers=list(estimators), random_state=random_state)
        model.fit(X_dsel, y_dsel)
        return np.asarray(model.predict_proba(X), dtype=np.float64)
