"""Members a user trained outside the project: load their file safely, map it onto the pool's classes.

Three formats, none of which runs code when read:

* ``skops`` -- a scikit-learn estimator or pipeline saved with ``skops.io.dump``. Before
  loading, :func:`skops.io.get_untrusted_types` lists every type the file would build that
  skops does not trust by default; any type or function outside the registry's explicit
  list of classes (:data:`~stream_ensemble.core.registry.formats.TRUSTED_TYPES`) is refused
  (the file is never loaded).
* ``xgboost`` -- a Booster saved with ``save_model`` (``.json`` or ``.ubj``), served as a fitted
  :class:`~stream_ensemble.core.members.boosters.XGBoostMember`.
* ``lightgbm`` -- a Booster's text model (``save_model``, ``.txt``), served as a fitted
  :class:`~stream_ensemble.core.members.boosters.LightGBMMember`.

Classes: the pool's class order is the holdout's (:class:`~stream_ensemble.core.data.datasets.Dataset`:
``[negative, positive]`` for two classes, the sorted label values for more). A scikit-learn
model names its classes (``classes_``, matched as text); a booster's classes are its integer
codes ``0..K-1``: matched by value when the holdout's labels are those codes, otherwise a
binary booster's output is the probability of ``--positive`` and a K-class booster's columns
follow the sorted label values (scikit-learn's ``LabelEncoder`` order). When the model's
column order is not the pool's, it is wrapped in :class:`ClassColumns`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from stream_ensemble.core.members.boosters import LightGBMMember, XGBoostMember
from stream_ensemble.core.registry.formats import TRUSTED_TYPES
from stream_ensemble.errors import ConfigError

#: Model file formats ``models add`` reads, by file-name ending.
FORMATS = {".skops": "skops", ".json": "xgboost", ".ubj": "xgboost", ".txt": "lightgbm", ".lgb": "lightgbm"}
#: Booster objectives whose predictions are class probabilities.
PROBABILITY_OBJECTIVES = {"xgboost": ("binary:logistic", "multi:softprob"),
                          "lightgbm": ("binary", "multiclass", "multiclassova")}


class ClassColumns(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted classifier whose ``predict_proba`` columns are reordered into the pool's order.

    Parameters
    ----------
    model : fitted classifier
    columns : list of int, length n_classes
        ``columns[j]`` is the model's output column of pool class ``j``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        ``0..n_classes-1`` (the pool's class indices).
    """

    def __init__(self, model: Any = None, columns: Sequence[int] = ()) -> None:
        self.model = model
        self.columns = list(columns)
        self.classes_ = np.arange(len(self.columns))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities in the pool's order, shape (n, n_classes)."""
        return np.asarray(self.model.predict_proba(X), dtype=np.float64)[:, self.columns]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class index, shape (n,)."""
        return np.asarray(np.argmax(self.predict_proba(X), axis=1))


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (native libraries append multi-line backtraces)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def infer_format(path: Path, fmt: str | None) -> str:
    """``fmt`` if given, else the format named by the file's extension (:data:`FORMATS`)."""
    if fmt:
        if fmt not in set(FORMATS.values()):
            raise ConfigError(f"unknown --format {fmt!r}; one of: skops, xgboost, lightgbm")
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ConfigError(f"cannot tell the format of {path.name} from its extension; pass --format "
                          f"skops|xgboost|lightgbm (known endings: {', '.join(FORMATS)})")
    return found


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # not a zip, not a skops schema...
        raise ConfigError(f"cannot read {path.name} as a skops file: {one_line(exc)}") from exc
    # The registry's explicit list (classes only), not "anything under numpy/scipy/sklearn": skops
    # builds a trusted name by calling it with the file's arguments (numpy.load(f, None, True)
    # unpickles), and a function it holds (FunctionTransformer(func=numpy.save)) would be called
    # at predict time. Checked by name: nothing the file names is imported before it is trusted.
    refused = [t for t in untrusted if t not in TRUSTED_TYPES]
    if refused:
        raise ConfigError(f"refusing {path.name}: it contains types outside skops' defaults and the registry's "
                          f"trusted list: {', '.join(sorted(refused)[:5])} (not loaded)")
    try:
        return sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:
        raise ConfigError(f"cannot load {path.name} with skops: {one_line(exc)}") from exc


def _objective(booster: Any, fmt: str) -> str:
    """The training objective a booster file records (XGBoost's config, LightGBM's model header)."""
    if fmt == "xgboost":
        import json

        return str(json.loads(booster.save_config())["learner"]["objective"]["name"])
    return str(booster.dump_model(num_iteration=0).get("objective", "")).split(" ")[0]


def _load_booster(path: Path, fmt: str) -> Any:
    booster: Any
    try:
        if fmt == "xgboost":
            import xgboost as xgb

            booster = xgb.Booster(model_file=str(path))
            booster.set_param({"nthread": 1})
            member: Any = XGBoostMember()
        else:
            import lightgbm as lgb

            booster = lgb.Booster(model_file=str(path))
            member = LightGBMMember()
    except Exception as exc:  # the libraries raise their own error types on a bad file
        raise ConfigError(f"cannot load {path.name} as a {fmt} model: {one_line(exc)}") from exc
    objective = _objective(booster, fmt)
    if objective not in PROBABILITY_OBJECTIVES[fmt]:
        raise ConfigError(f"{path.name}: the {fmt} objective is {objective!r}, which does not predict probabilities; "
                          f"models add takes {' or '.join(PROBABILITY_OBJECTIVES[fmt])}")
    member.booster_ = booster
    member.best_iteration_ = int(booster.num_boosted_rounds() if fmt == "xgboost" else booster.current_iteration())
    return member


def load_model(path: Path, fmt: str) -> Any:
    """Read a user's model file without running code from it.

    Parameters
    ----------
    path : Path
    fmt : {"skops", "xgboost", "lightgbm"}

    Returns
    -------
    object
        A scikit-learn estimator (skops) or an :class:`XGBoostMember` / :class:`LightGBMMember`
        holding the booster (``classes_`` not set yet: :func:`as_member` sets it).

    Raises
    ------
    ConfigError
        Missing or unreadable file, untrusted types in a skops file, not a classifier.
    """
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    if fmt == "skops":
        model = _load_skops(path)
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise ConfigError(f"{path.name} holds a {type(model).__name__}, not a fitted classifier with predict_proba")
        return model
    return _load_booster(path, fmt)


def model_features(model: Any) -> tuple[int | None, list[str] | None]:
    """What the model says about its inputs: (number of features, their names or None)."""
    if isinstance(model, XGBoostMember):
        b = model.booster_
        return int(b.num_features()), (list(b.feature_names) if b.feature_names else None)
    if isinstance(model, LightGBMMember):
        names = list(model.booster_.feature_name())
        default = all(re.fullmatch(r"Column_\d+", n) for n in names)
        return int(model.booster_.num_feature()), None if default else names
    n = getattr(model, "n_features_in_", None)
    given = getattr(model, "feature_names_in_", None)
    return (int(n) if n is not None else None), ([str(x) for x in given] if given is not None else None)


def check_features(model: Any, features: Sequence[str]) -> None:
    """Refuse a feature list that the model's own record of its inputs contradicts.

    LightGBM stores names with spaces and JSON-special characters replaced by ``_``, so they
    are compared in that form.

    Raises
    ------
    ConfigError
        Different count, or different names / order.
    """
    n, names = model_features(model)
    if n is not None and n != len(features):
        raise ConfigError(f"feature mismatch: the model takes {n} features, --features names {len(features)}")
    if names is None:
        return
    given = list(features)
    if isinstance(model, LightGBMMember):
        given = [re.sub(r"[\s\"',:\[\]{}]", "_", f) for f in given]
    if names != given:
        diff = next(i for i, (a, b) in enumerate(zip(names, given)) if a != b)
        raise ConfigError(f"feature mismatch at position {diff}: the model was fit on {names[diff]!r}, "
                          f"--features gives {features[diff]!r} (order matters)")


def _columns(model_classes: Sequence[str], classes: Sequence[str], what: str) -> list[int]:
    index = {c: j for j, c in enumerate(model_classes)}
    missing = [c for c in classes if c not in index]
    if missing or len(model_classes) != len(classes):
        raise ConfigError(f"class mismatch: {what} has classes {list(model_classes)}, the holdout's label has "
                          f"{list(classes)}")
    return [index[c] for c in classes]


def _booster_outputs(model: Any, X: np.ndarray) -> int:
    """Columns of a booster's probability output on ``X`` (a binary booster gives one: 2 classes)."""
    b = model.booster_
    raw = np.asarray(b.inplace_predict(X) if isinstance(model, XGBoostMember) else b.predict(X, num_threads=1))
    return 2 if raw.ndim == 1 else int(raw.shape[1])


def as_member(model: Any, classes: Sequence[str], X: np.ndarray) -> Any:
    """The model with ``classes_ == arange(K)`` in the pool's class order.

    Parameters
    ----------
    model : object
        From :func:`load_model`.
    classes : sequence of str, length K
        The holdout's class names in pool order.
    X : ndarray of shape (n, n_features)
        Holdout rows (a booster's class count is read off its output on them).

    Returns
    -------
    object
        ``model`` itself, or a :class:`ClassColumns` around it.

    Raises
    ------
    ConfigError
        The model's classes do not match the holdout's.
    """
    k = len(classes)
    if isinstance(model, (XGBoostMember, LightGBMMember)):
        n_out = _booster_outputs(model, X)
        if n_out != k:
            raise ConfigError(f"class mismatch: the booster predicts {n_out} classes, the holdout's label has {k}")
        model.classes_ = np.arange(k)
        model.n_features_in_ = X.shape[1]
        codes = [str(j) for j in range(k)]
        # Integer labels are the booster's own codes; text labels follow the documented convention.
        columns = _columns(codes, classes, "the booster") if set(classes) == set(codes) else list(range(k))
        return model if columns == list(range(k)) else ClassColumns(model, columns)
    _forget_feature_names(model)
    columns = _columns([str(c) for c in model.classes_], classes, type(model).__name__)
    c = np.asarray(model.classes_)
    index_classes = c.dtype.kind in "iu" and np.array_equal(c, np.arange(k))
    return model if index_classes and columns == list(range(k)) else ClassColumns(model, columns)


def _forget_feature_names(model: Any) -> None:
    """Drop ``feature_names_in_`` from a scikit-learn model and its pipeline steps.

    The serving path passes a float matrix, which a model fit on a DataFrame warns about on
    every call; the names were checked by :func:`check_features` and live in the manifest.
    """
    for step in [model, *(s for _, s in getattr(model, "steps", []))]:
        if "feature_names_in_" in getattr(step, "__dict__", {}):
            del step.feature_names_in_
