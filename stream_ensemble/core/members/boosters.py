"""LightGBM and XGBoost pool members: native training with early stopping, native predict.

Both are scikit-learn compatible classifiers (``fit``, ``predict_proba``, ``classes_``,
``get_params``), so the OOF machinery clones and refits them like any other member. What they
do differently from the libraries' own scikit-learn wrappers:

* **Early stopping on an inner split.** ``fit`` holds out a stratified ``validation_fraction``
  of its rows, boosts up to ``n_estimators`` rounds and stops when the held-out log loss has
  not improved for ``early_stopping_rounds``; the model keeps the best iteration. Each OOF fold
  clone stops on its own inner split, so OOF predictions never saw the rows they predict.
* **One thread, native predict.** Training and prediction are pinned to one thread (see
  :mod:`stream_ensemble.core.members.families`); ``predict_proba`` calls the booster directly
  (LightGBM ``Booster.predict``, XGBoost ``inplace_predict``), skipping the wrappers' input
  conversion, which dominates on the small batches a worker scores.

The libraries are imported lazily, so importing the pool does not load them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from stream_ensemble.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


def _inner_split(X: FloatArray, y: npt.NDArray[np.int64], fraction: float,
                 seed: int) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray, npt.NDArray[np.int64]]:
    """Stratified (fit, stop) split of the training rows; stratification dropped when a class is tiny."""
    counts = np.bincount(y)
    n_stop = int(round(fraction * y.size))
    stratify = y if counts.min() >= 2 and n_stop >= counts.size else None
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=fraction, random_state=seed, stratify=stratify)
    return Xa, ya, Xb, yb


def _prepare(est: Any, X: Any, y: Any) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    Xa = np.ascontiguousarray(X, dtype=np.float64)
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    if classes.size < 2:
        raise ConfigError(f"{type(est).__name__} needs at least two classes, got {classes.tolist()}")
    if not 0.0 < est.validation_fraction < 0.5:
        raise ConfigError(f"validation_fraction must be in (0, 0.5), got {est.validation_fraction}")
    est.classes_ = classes
    est.n_features_in_ = Xa.shape[1]
    return Xa, codes.astype(np.int64)


def _two_columns(raw: FloatArray, n_classes: int) -> FloatArray:
    """(n,) positive-class output -> (n, 2); (n, k) is returned as is."""
    p = np.asarray(raw, dtype=np.float64)
    if n_classes == 2:
        p = p.reshape(-1)
        return np.column_stack([1.0 - p, p])
    return p.reshape(-1, n_classes)


class LightGBMMember(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """LightGBM gradient-boosted trees with early stopping on an inner split.

    Parameters
    ----------
    n_estimators : int, default=2000
        Upper bound on boosting rounds (early stopping normally ends far sooner).
    learning_rate : float, default=0.05
    num_leaves : int, default=31
    min_child_samples : int, default=20
    feature_fraction : float, default=0.9
    bagging_fraction : float, default=1.0
        Row subsample per round (bagging every round when < 1).
    lambda_l2 : float, default=0.0
    extra_trees : bool, default=False
        Randomised split thresholds (a more diverse, smoother variant).
    validation_fraction : float, default=0.15
        Share of the training rows held out for early stopping.
    early_stopping_rounds : int, default=50
    random_state : int, default=0

    Attributes
    ----------
    booster_ : lightgbm.Booster
    best_iteration_ : int
        Rounds kept (the best held-out log loss).
    classes_ : ndarray of shape (n_classes,)
    """

    def __init__(self, n_estimators: int = 2000, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 20, feature_fraction: float = 0.9, bagging_fraction: float = 1.0,
                 lambda_l2: float = 0.0, extra_trees: bool = False, validation_fraction: float = 0.15,
                 early_stopping_rounds: int = 50, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.extra_trees = extra_trees
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None,
            stop_set: tuple[Any, Any, Any] | None = None) -> LightGBMMember:
        """Boost on ``1 - validation_fraction`` of the rows, stop on the rest.

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        y : array-like of shape (n,)
        sample_weight : array-like of shape (n,), optional
            Row weights (distillation repeats a row once per class, weighted by the teacher's
            probability of that class: weighted log loss = cross-entropy to the soft target).
        stop_set : (X_stop, y_stop, w_stop), optional
            Early-stopping rows to use instead of the inner split (``w_stop`` may be None), for
            callers whose rows are not independent (repeated rows must not straddle the split).

        Returns
        -------
        self
        """
        import lightgbm as lgb

        Xa, codes = _prepare(self, X, y)
        k = self.classes_.size
        ws: Any = None
        if stop_set is None:
            if sample_weight is not None:
                raise ConfigError("sample_weight needs an explicit stop_set (the inner split is unweighted)")
            Xf, yf, Xs, ys = _inner_split(Xa, codes, self.validation_fraction, self.random_state)
            wf: Any = None
        else:
            Xf, yf, wf = Xa, codes, sample_weight
            Xs = np.ascontiguousarray(stop_set[0], dtype=np.float64)
            ys = np.searchsorted(self.classes_, np.asarray(stop_set[1]))
            ws = stop_set[2]
        params: dict[str, Any] = {
            "objective": "binary" if k == 2 else "multiclass", "verbosity": -1, "num_threads": 1,
            "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples, "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction, "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.lambda_l2, "extra_trees": self.extra_trees, "seed": self.random_state,
            "deterministic": True, "force_row_wise": True,
        }
        if k > 2:
            params["num_class"] = k
        train = lgb.Dataset(Xf, label=yf, weight=wf, free_raw_data=True)
        stop = lgb.Dataset(Xs, label=ys, weight=ws, reference=train)
        self.booster_ = lgb.train(params, train, num_boost_round=self.n_estimators, valid_sets=[stop],
                                  callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        # Only the kept trees are served (and pickled): the rounds after the best one are dead weight.
        self.booster_ = lgb.Booster(model_str=self.booster_.model_to_string(num_iteration=self.best_iteration_))
        return self

    def predict_proba(self, X: Any) -> FloatArray:
        """Class probabilities, shape (n, n_classes), one thread."""
        check_is_fitted(self, "booster_")
        raw = self.booster_.predict(np.asarray(X, dtype=np.float64), num_threads=1)
        return _two_columns(np.asarray(raw, dtype=np.float64), self.classes_.size)

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Most probable class label, shape (n,)."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    def __getstate__(self) -> dict[str, Any]:
        # The booster as LightGBM's own model text: what the registry's skops file holds.
        state = dict(super().__getstate__())
        if "booster_" in state and not isinstance(state["booster_"], str):
            state["booster_"] = state["booster_"].model_to_string()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # LightGBM's text parser rebuilds the booster; older pickles hold a Booster already.
        if isinstance(state.get("booster_"), str):
            import lightgbm as lgb

            state = {**state, "booster_": lgb.Booster(model_str=state["booster_"])}
        super().__setstate__(state)


class XGBoostMember(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """XGBoost (``hist``) gradient-boosted trees with early stopping on an inner split.

    Parameters
    ----------
    n_estimators : int, default=2000
    learning_rate : float, default=0.05
    max_depth : int, default=6
    min_child_weight : float, default=1.0
    subsample : float, default=0.8
    colsample_bytree : float, default=0.8
    reg_lambda : float, default=1.0
    validation_fraction : float, default=0.15
    early_stopping_rounds : int, default=50
    random_state : int, default=0

    Attributes
    ----------
    booster_ : xgboost.Booster
    best_iteration_ : int
        Rounds kept.
    classes_ : ndarray of shape (n_classes,)
    """

    def __init__(self, n_estimators: int = 2000, learning_rate: float = 0.05, max_depth: int = 6,
                 min_child_weight: float = 1.0, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, validation_fraction: float = 0.15, early_stopping_rounds: int = 50,
                 random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> XGBoostMember:
        """Boost on ``1 - validation_fraction`` of the rows, stop on the rest.

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        y : array-like of shape (n,)

        Returns
        -------
        self
        """
        import xgboost as xgb

        Xa, codes = _prepare(self, X, y)
        k = self.classes_.size
        Xf, yf, Xs, ys = _inner_split(Xa, codes, self.validation_fraction, self.random_state)
        params: dict[str, Any] = {
            "objective": "binary:logistic" if k == 2 else "multi:softprob",
            "eval_metric": "logloss" if k == 2 else "mlogloss", "tree_method": "hist", "nthread": 1,
            "eta": self.learning_rate, "max_depth": self.max_depth, "min_child_weight": self.min_child_weight,
            "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda, "seed": self.random_state, "verbosity": 0,
        }
        if k > 2:
            params["num_class"] = k
        train, stop = xgb.DMatrix(Xf, label=yf, nthread=1), xgb.DMatrix(Xs, label=ys, nthread=1)
        booster = xgb.train(params, train, num_boost_round=self.n_estimators, evals=[(stop, "stop")],
                            early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
        self.best_iteration_ = int(booster.best_iteration) + 1
        # Keep only the best rounds, so predict needs no iteration range and pickles stay small.
        self.booster_ = booster[: self.best_iteration_]
        self.booster_.set_param({"nthread": 1})
        return self

    def predict_proba(self, X: Any) -> FloatArray:
        """Class probabilities, shape (n, n_classes), one thread."""
        check_is_fitted(self, "booster_")
        raw = self.booster_.inplace_predict(np.asarray(X, dtype=np.float64))
        return _two_columns(np.asarray(raw), self.classes_.size)

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Most probable class label, shape (n,)."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    def __getstate__(self) -> dict[str, Any]:
        # The booster as XGBoost's UBJ model bytes: what the registry's skops file holds.
        state = dict(super().__getstate__())
        if "booster_" in state and not isinstance(state["booster_"], bytes):
            state["booster_"] = bytes(state["booster_"].save_raw("ubj"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # XGBoost's UBJ reader rebuilds the booster; older pickles hold a Booster already.
        if isinstance(state.get("booster_"), bytes):
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(state["booster_"]))
            booster.set_param({"nthread": 1})
            state = {**state, "booster_": booster}
        super().__setstate__(state)
