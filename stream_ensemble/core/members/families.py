"""The model families a pool is built from.

Every estimator is pinned to one thread (``n_jobs=1``): on small machines library-default
threading made timings swing 10x and fits 10-100x slower when libraries were mixed in one
process. Scale comes from worker processes in a consumer group instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier

from stream_ensemble.core.members.boosters import LightGBMMember, XGBoostMember
from stream_ensemble.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """An unfitted pool member.

    Attributes
    ----------
    model_id : str
        Stable name, e.g. ``"random_forest"``; versions are added by the registry.
    family : str
        Architecture family (linear, bagged_trees, boosted_trees, knn, naive_bayes, mlp, tree).
    estimator : ClassifierMixin
        Unfitted scikit-learn classifier with ``predict_proba``.
    search : tuple of dict
        Candidate hyperparameters (``set_params`` overrides) tried by
        :func:`~stream_ensemble.core.members.search.tune_specs` at training time; the one with
        the lowest validation log loss is kept. Empty: the estimator is used as given.
    """

    model_id: str
    family: str
    estimator: Any
    search: tuple[dict[str, Any], ...] = field(default=(), compare=False)


#: LightGBM candidates: the library's usual shape, a shallow regularised one, a large-leaf
#: bagged one and a randomised-threshold one (diverse on purpose: they may all be kept as
#: variants). Learning rates are moderate so early stopping ends in a few hundred rounds.
LIGHTGBM_SEARCH: tuple[dict[str, Any], ...] = (
    {"num_leaves": 31, "min_child_samples": 20, "feature_fraction": 0.9, "learning_rate": 0.05},
    {"num_leaves": 15, "min_child_samples": 10, "feature_fraction": 0.7, "lambda_l2": 1.0, "learning_rate": 0.05},
    {"num_leaves": 63, "min_child_samples": 30, "feature_fraction": 0.8, "bagging_fraction": 0.8,
     "lambda_l2": 5.0, "learning_rate": 0.03},
    {"num_leaves": 7, "min_child_samples": 5, "feature_fraction": 1.0, "extra_trees": True, "learning_rate": 0.1},
)
#: XGBoost candidates, likewise spread over depth, sampling and regularisation.
XGBOOST_SEARCH: tuple[dict[str, Any], ...] = (
    {"max_depth": 6, "learning_rate": 0.05, "subsample": 0.8, "colsample_bytree": 0.8},
    {"max_depth": 3, "learning_rate": 0.1, "subsample": 1.0, "colsample_bytree": 1.0},
    {"max_depth": 8, "learning_rate": 0.03, "subsample": 0.7, "colsample_bytree": 0.6,
     "min_child_weight": 3.0, "reg_lambda": 5.0},
    {"max_depth": 4, "learning_rate": 0.05, "subsample": 0.9, "colsample_bytree": 0.5, "min_child_weight": 5.0},
)


def default_pool(random_state: int = 0) -> list[ModelSpec]:
    """Ten heterogeneous members: the default pool ``train`` builds.

    Three boosters stop early on an inner split (``hist_gb`` with scikit-learn's own early
    stopping; ``lightgbm`` and ``xgboost`` with a small hyperparameter search at training time).

    Parameters
    ----------
    random_state : int

    Returns
    -------
    list of ModelSpec
    """
    rs = random_state
    return [
        ModelSpec("logreg", "linear", LogisticRegression(C=1.0, max_iter=2000)),
        ModelSpec("random_forest", "bagged_trees", RandomForestClassifier(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=rs)),
        ModelSpec("extra_trees", "bagged_trees", ExtraTreesClassifier(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=rs)),
        ModelSpec("hist_gb", "boosted_trees", HistGradientBoostingClassifier(max_iter=500, learning_rate=0.1, early_stopping=True, validation_fraction=0.15, n_iter_no_change=20, random_state=rs)),
        ModelSpec("lightgbm", "boosted_trees", LightGBMMember(random_state=rs), search=LIGHTGBM_SEARCH),
        ModelSpec("xgboost", "boosted_trees", XGBoostMember(random_state=rs), search=XGBOOST_SEARCH),
        ModelSpec("knn", "knn", KNeighborsClassifier(n_neighbors=15, weights="distance", algorithm="brute", n_jobs=1)),
        ModelSpec("naive_bayes", "naive_bayes", GaussianNB()),
        ModelSpec("mlp", "mlp", MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=400, early_stopping=True, random_state=rs)),
        ModelSpec("decision_tree", "tree", DecisionTreeClassifier(max_depth=6, min_samples_leaf=5, random_state=rs)),
    ]


def large_pool(n_models: int = 120, random_state: int = 0) -> list[ModelSpec]:
    """A pool of ``n_models`` variants (hyperparameters, seeds) across all families.

    Used by the scale checks: many members, several of them versions of the same model.
    """
    specs: list[ModelSpec] = []
    i = 0
    while len(specs) < n_models:
        rs = random_state + i
        grid: list[ModelSpec] = [
            ModelSpec(f"logreg_c{i}", "linear", LogisticRegression(C=10.0 ** (i % 5 - 2), max_iter=2000)),
            ModelSpec(f"rf_{i}", "bagged_trees", RandomForestClassifier(n_estimators=20 + 5 * (i % 4), max_features=0.3 + 0.1 * (i % 4), min_samples_leaf=1 + i % 3, n_jobs=1, random_state=rs)),
            ModelSpec(f"et_{i}", "bagged_trees", ExtraTreesClassifier(n_estimators=20 + 5 * (i % 4), min_samples_leaf=1 + i % 4, n_jobs=1, random_state=rs)),
            ModelSpec(f"hgb_{i}", "boosted_trees", HistGradientBoostingClassifier(max_iter=40 + 20 * (i % 4), learning_rate=0.05 + 0.05 * (i % 3), max_leaf_nodes=15 + 8 * (i % 3), early_stopping=False, random_state=rs)),
            ModelSpec(f"knn_k{i}", "knn", KNeighborsClassifier(n_neighbors=3 + 4 * (i % 8), weights="distance" if i % 2 else "uniform", algorithm="brute", n_jobs=1)),
            ModelSpec(f"nb_{i}", "naive_bayes", GaussianNB(var_smoothing=10.0 ** (-9 + i % 6))),
            ModelSpec(f"mlp_{i}", "mlp", MLPClassifier(hidden_layer_sizes=(16 + 16 * (i % 3),), alpha=10.0 ** (-4 + i % 3), max_iter=300, early_stopping=True, random_state=rs)),
            ModelSpec(f"tree_{i}", "tree", DecisionTreeClassifier(max_depth=3 + i % 8, min_samples_leaf=1 + 2 * (i % 4), random_state=rs)),
        ]
        specs.extend(grid)
        i += 1
    return specs[:n_models]


POOLS = {"default": default_pool, "large": large_pool}


def make_pool(name: str, random_state: int = 0, **kwargs: Any) -> list[ModelSpec]:
    """Look up a pool recipe by name.

    Raises
    ------
    ConfigError
        Unknown pool name.
    """
    try:
        factory = POOLS[name]
    except KeyError:
        raise ConfigError(f"unknown pool {name!r}; choose one of: {', '.join(POOLS)}") from None
    specs: list[ModelSpec] = factory(random_state=random_state, **kwargs)  # type: ignore[operator]
    return specs


def is_classifier(est: Any) -> bool:
    """True when ``est`` looks like a probabilistic classifier."""
    return isinstance(est, ClassifierMixin) and hasattr(est, "predict_proba")
