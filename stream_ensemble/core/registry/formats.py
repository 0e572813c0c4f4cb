"""Artifact formats that cannot run code, and the one that can (pickle, opt-in only).

Every artifact is written in one of these formats (the manifest's ``format`` field):

=========== ==================== ===========================================================
format      file                 holds
=========== ==================== ===========================================================
``skops``   ``<stem>.skops``     scikit-learn estimators and pipelines, the project's pool
                                 members (LightGBM boosters inside as LightGBM's own model
                                 text, XGBoost boosters as UBJ bytes) and the ensemble state
                                 (encoder, strategy, calibrator, conformal thresholds)
``xgboost`` ``<stem>.ubj``       an ``xgboost.XGBClassifier`` or ``xgboost.Booster``, XGBoost's
                                 own UBJ model file
``lightgbm`` ``<stem>.txt``      a ``lightgbm.Booster``, LightGBM's own model text
``pickle``  ``<stem>.pkl``       anything; registries written before these formats. Loading
                                 one runs whatever code it names, so it is refused unless the
                                 caller trusts pickles explicitly (``--trust-pickle``)
=========== ==================== ===========================================================

A skops file lists the type of every object it holds; :func:`load_artifact` builds it only
when each type is in skops' own defaults (scikit-learn estimators, numpy, builtins) or in
:data:`TRUSTED_TYPES`, the explicit list below, and never calls anything else. Objects are
rebuilt with ``cls.__new__`` plus their state, and enums by value lookup, so no constructor
or function named by the file runs. A type outside the list is refused at *save* time too
(:func:`dump_artifact` re-reads what it wrote), so the registry never holds an artifact that
it would later refuse.

The libraries are imported lazily: importing the registry loads neither skops nor the boosters.
"""

from __future__ import annotations

import enum
import pickle
from functools import cache
from pathlib import Path
from typing import Any

from stream_ensemble.core.registry.legacy import load as unpickle
from stream_ensemble.errors import IntegrityError, ModelPoolError

FORMATS = ("skops", "xgboost", "lightgbm", "pickle")
_SUFFIX = {"skops": ".skops", "xgboost": ".ubj", "lightgbm": ".txt", "pickle": ".pkl"}

_CORE = "stream_ensemble.core"
#: Types trusted beyond skops' defaults, by full path. Each one is rebuilt from plain state
#: (``__new__`` + ``__setstate__``/``__dict__``, or an enum looked up by value); none of them
#: runs code named by the file. ``tests/unit/test_registry_formats.py`` builds every strategy
#: of the catalogue and the default pool and checks that this list covers them, no more.
TRUSTED_TYPES: tuple[str, ...] = (
    # scikit-learn internals that skops does not trust by default (plain arrays and params)
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.model_selection._split.StratifiedKFold",  # the stacking meta-learner's cv
    # ... and in users' models (`models add`): MLP(solver="sgd"), CalibratedClassifierCV,
    # SimpleImputer's dtype, GridSearchCV's scorer, KNN trees, Voting/Stacking's named estimators
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "numpy.dtype",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.utils._bunch.Bunch",
    # pool and user members: their state holds the booster as LightGBM model text / XGBoost UBJ
    # bytes; ClassColumns reorders a user model's output columns
    f"{_CORE}.members.boosters.LightGBMMember",
    f"{_CORE}.members.boosters.XGBoostMember",
    f"{_CORE}.members.user.ClassColumns",
    # ensemble state: encoder, strategy, selection, combiners, calibration, conformal
    f"{_CORE}.data.features.FeatureEncoder",
    f"{_CORE}.strategies.strategy.EnsembleStrategy",
    f"{_CORE}.strategies.planner.Planner",
    f"{_CORE}.strategies.planner.Plan",
    f"{_CORE}.strategies.planner.SelectFn",
    f"{_CORE}.strategies.catalogue.StrategySpec",
    f"{_CORE}.strategies.catalogue.SelectorKind",
    f"{_CORE}.selection.constraints.SelectionConstraints",
    f"{_CORE}.selection.constraints.SelectionResult",
    f"{_CORE}.selection.cache.SelectionCache",
    f"{_CORE}.selection.select.SelectionMethod",
    f"{_CORE}.selection.dynamic.RegionSelector",
    f"{_CORE}.selection.dynamic.KnoraE",
    f"{_CORE}.combiners._base.CombinerName",
    f"{_CORE}.combiners.voting.SoftVoting",
    f"{_CORE}.combiners.voting.HardVoting",
    f"{_CORE}.combiners.voting.Weighted",
    f"{_CORE}.combiners.voting.GeometricMean",
    f"{_CORE}.combiners.rank.RankAverage",
    f"{_CORE}.combiners.rank._MidrankECDF",
    f"{_CORE}.combiners.stacking.Stacking",
    f"{_CORE}.combiners.boosting.Boosting",
    f"{_CORE}.confidence.calibration.EnsembleCalibrator",
    f"{_CORE}.confidence.calibration.CalibrationMethod",
    f"{_CORE}.confidence.calibration._Identity",
    f"{_CORE}.confidence.calibration._Platt",
    f"{_CORE}.confidence.calibration._Isotonic",
    f"{_CORE}.confidence.temperature.TemperatureCalibrator",
    f"{_CORE}.confidence.conformal.ConformalClassifier",
)

#: Types :func:`dump_artifact` writes natively, by ``module.qualname`` of the object.
_XGBOOST_TYPES = ("xgboost.sklearn.XGBClassifier", "xgboost.core.Booster")
_LIGHTGBM_TYPES = ("lightgbm.basic.Booster",)


def type_path(obj: Any) -> str:
    """``module.QualName`` of an object's type, e.g. ``xgboost.core.Booster``."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def choose_format(obj: Any) -> str:
    """The native format for XGBoost / LightGBM boosters, skops for everything else."""
    path = type_path(obj)
    if path in _XGBOOST_TYPES:
        return "xgboost"
    if path in _LIGHTGBM_TYPES:
        return "lightgbm"
    return "skops"


def dump_artifact(obj: Any, directory: Path, stem: str, fmt: str | None = None) -> tuple[str, dict[str, Any]]:
    """Write ``obj`` to ``directory/<stem><suffix>`` in ``fmt`` (default :func:`choose_format`).

    Parameters
    ----------
    obj : object
        A fitted estimator, booster or ensemble state.
    directory : Path
        Existing directory (the version's temporary directory).
    stem : str
        File name without suffix (``model`` or ``ensemble``).
    fmt : {"skops", "xgboost", "lightgbm", "pickle"}, optional

    Returns
    -------
    filename : str
    fields : dict
        Manifest fields that describe the file: ``format`` and, for native files, ``object``
        (what :func:`load_artifact` rebuilds).

    Raises
    ------
    ModelPoolError
        Unknown format, or ``obj`` holds a type outside the trusted list (skops).
    """
    fmt = fmt or choose_format(obj)
    if fmt not in FORMATS:
        raise ModelPoolError(f"unknown artifact format {fmt!r}; one of {', '.join(FORMATS)}")
    path = directory / f"{stem}{_SUFFIX[fmt]}"
    fields: dict[str, Any] = {"format": fmt}
    if fmt == "skops":
        _dump_skops(obj, path)
    elif fmt == "xgboost":
        if type_path(obj) not in _XGBOOST_TYPES:
            raise ModelPoolError(f"format xgboost holds {' or '.join(_XGBOOST_TYPES)}, not {type_path(obj)}")
        obj.save_model(str(path))
        fields["object"] = type_path(obj)
    elif fmt == "lightgbm":
        if type_path(obj) not in _LIGHTGBM_TYPES:
            raise ModelPoolError(f"format lightgbm holds a lightgbm.Booster, not {type_path(obj)}")
        obj.save_model(str(path))
        fields["object"] = type_path(obj)
    else:
        with path.open("wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path.name, fields


def load_artifact(path: Path, fmt: str, fields: dict[str, Any], *, trust_pickle: bool, what: str) -> Any:
    """Rebuild the object in ``path`` (its sha256 and signature already checked).

    Parameters
    ----------
    path : Path
    fmt : str
        The manifest's ``format`` (``pickle`` for manifests written before formats existed).
    fields : dict
        The manifest (``object`` names what a native file rebuilds).
    trust_pickle : bool
        Load ``pickle`` artifacts (they can run any code); refused otherwise.
    what : str
        ``kind/name/vN``, for error messages.

    Raises
    ------
    IntegrityError
        A pickle without ``trust_pickle``, a skops file naming an untrusted type, or a file
        its format cannot read.
    """
    if fmt == "pickle":
        if not trust_pickle:
            raise IntegrityError(
                f"refusing {what}: it is a pickle, which can run code when loaded; rewrite the registry with "
                "`stream-ensemble registry migrate`, or pass --trust-pickle (SE_TRUST_PICKLE=1) if you trust it")
        with path.open("rb") as fh:
            return unpickle(fh)
    if fmt == "skops":
        return _load_skops(path, what)
    if fmt == "xgboost":
        return _load_xgboost(path, str(fields.get("object", "")), what)
    if fmt == "lightgbm":
        import lightgbm as lgb

        return lgb.Booster(model_file=str(path))
    raise IntegrityError(f"refusing {what}: unknown artifact format {fmt!r} (one of {', '.join(FORMATS)})")


def untrusted_types(obj: Any) -> list[str]:
    """Types in ``obj`` that a skops artifact of it would be refused for (empty: storable)."""
    import skops.io as sio

    _register_enum_state()
    return sorted(set(sio.get_untrusted_types(data=sio.dumps(obj))) - set(TRUSTED_TYPES))


# ----------------------------------------------------------------------------- skops
def _dump_skops(obj: Any, path: Path) -> None:
    import skops.io as sio

    _register_enum_state()
    data = sio.dumps(obj)
    bad = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if bad:
        raise ModelPoolError(
            f"cannot store a {type_path(obj)} in the skops format: it holds types outside the trusted list "
            f"({', '.join(bad)}); a scikit-learn estimator or pipeline, an XGBoost model or a LightGBM booster can be stored")
    path.write_bytes(data)


def _load_skops(path: Path, what: str) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    _register_enum_state()
    try:
        return sio.loads(path.read_bytes(), trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise IntegrityError(f"refusing {what}: the skops file names types outside the trusted list ({exc})") from None
    except Exception as exc:  # a truncated zip, a schema skops cannot read...
        raise IntegrityError(f"refusing {what}: unreadable skops file ({type(exc).__name__}: {exc})") from None


def _load_xgboost(path: Path, obj_type: str, what: str) -> Any:
    import xgboost as xgb

    if obj_type == "xgboost.sklearn.XGBClassifier":
        model = xgb.XGBClassifier()
        model.load_model(str(path))
        return model
    if obj_type == "xgboost.core.Booster":
        return xgb.Booster(model_file=str(path))
    raise IntegrityError(f"refusing {what}: format xgboost cannot rebuild a {obj_type!r}")


def _enum_state(obj: enum.Enum, save_context: Any) -> dict[str, Any]:
    """skops state of an enum member: rebuilt as ``EnumType(value)`` (a lookup, no code)."""
    from skops.io._general import get_module
    from skops.io._utils import get_state

    return {"__class__": type(obj).__name__, "__module__": get_module(type(obj)),
            "__loader__": "ConstructorFromReduceNode", "content": get_state((obj.value,), save_context)}


@cache
def _register_enum_state() -> None:
    """Make skops keep enum members as enums (once per process).

    skops first tries ``json.dumps`` on every object, so a ``str`` enum was stored as a plain
    string and came back as one: ``selector is SelectorKind.ALL`` was then false, and a
    re-selection after a member went down failed in the planner. Enums are stored as a
    constructor call with their value instead (the enum type must be trusted to load).
    """
    from skops.io._utils import _get_state

    _get_state.register(enum.Enum)(_enum_state)
