"""Bring your own models: register a user's fitted model, build an ensemble of them on a holdout.

``models add`` (:func:`add_member`): the user's file is read without running code
(:mod:`stream_ensemble.core.members.user`), checked against the feature list, run on the
holdout's feature columns (every row must come out as probabilities), timed as the registry
times every member (per call and per row, one thread, in process), scored on the holdout and
registered as the next version of its name.

``ensemble build`` (:func:`build_ensemble`): the members never saw the holdout, so their
predictions on it are honest out-of-sample predictions -- what the training pipeline's
out-of-fold predictions are. The existing pipeline
(:func:`~stream_ensemble.core.training.builder.build_on_members`) fits selection, combiner
and calibrator on one part of the holdout and conformal sets and the choices on the other
(:data:`FIT_FRACTIONS`). Reported metrics are cross-fitted: the holdout is cut into
``folds``; for each, the whole procedure is run on the other folds and the held-out fold is
scored, so every row's reported probability comes from an ensemble that never saw it
(``metrics``: the whole procedure, the strategy choice included). The served version is then
built the same way on the whole holdout; with ``strategy="auto"`` the strategy it chose is
cross-fitted again on its own (``served_strategy``: the figures of what is served, up to
having been chosen on the same rows).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from stream_ensemble.core.data.datasets import Dataset, stratified_split
from stream_ensemble.core.data.features import FeatureEncoder, raw_encoder
from stream_ensemble.core.evaluation import evaluate
from stream_ensemble.core.members.flat_forest import served_form
from stream_ensemble.core.members.oof import MemberFit, measure_cost, predict_members
from stream_ensemble.core.members.pool import valid_rows
from stream_ensemble.core.members.user import as_member, check_features, infer_format, load_model, one_line
from stream_ensemble.core.registry.store import Registry, sha256_file
from stream_ensemble.core.strategies import AUTO
from stream_ensemble.core.training.builder import BuildConfig, BuiltEnsemble, build_on_members
from stream_ensemble.core.training.pipeline import SMOKE_ROWS, _calibration_method, _conformal_settings, _selected
from stream_ensemble.errors import ConfigError, ModelPoolError
from stream_ensemble.types import Matrix

#: Metrics reported per member and per ensemble.
METRICS = ("log_loss", "accuracy", "roc_auc", "brier")
#: (fit, calibration) parts of the holdout inside one build (the training pipeline's 60/20 ratio).
FIT_FRACTIONS = (0.75, 0.25)
#: ``built_from`` of an ensemble manifest written by :func:`build_ensemble`.
BUILT_FROM = "holdout"


def _metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in evaluate(p, y).items() if k in METRICS and not math.isnan(v)}


def _feature_matrix(holdout: Dataset, features: Sequence[str]) -> tuple[FeatureEncoder, Matrix]:
    """The raw (unscaled) model matrix of ``features``, after checking them against the holdout."""
    names = list(features)
    if not names:
        raise ConfigError("no features given (--features a,b,... or --features-from CSV)")
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate feature names in {names}")
    missing = [f for f in names if f not in holdout.columns]
    if missing:
        raise ConfigError(f"feature mismatch: {', '.join(missing[:5])} not in the holdout's columns "
                          f"({', '.join(holdout.features[:8])}{', ...' if len(holdout.features) > 8 else ''})")
    text = [f for f in names if f not in holdout.numeric]
    if text:
        raise ConfigError(f"features must be numeric; {', '.join(text[:5])} holds text in the holdout")
    enc = raw_encoder(names, holdout.columns)
    return enc, enc.transform_columns(holdout.columns)


def _predict(est: Any, X: Matrix, k: int, what: str) -> np.ndarray:
    """``est.predict_proba(X)`` checked to be (n, k) probabilities on every row."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # e.g. "X does not have valid feature names": names are checked above
            P = np.asarray(est.predict_proba(X), dtype=np.float64)
    except Exception as exc:
        raise ConfigError(f"{what} cannot predict on the holdout's feature columns: {one_line(exc)}") from exc
    if P.shape != (X.shape[0], k):
        raise ConfigError(f"{what} returned shape {P.shape} on the holdout, expected ({X.shape[0]}, {k})")
    bad = int((~valid_rows(P)).sum())
    if bad:
        raise ConfigError(f"{what} gave {bad} of {X.shape[0]} holdout rows that are not probabilities "
                          "(a raw-margin objective?)")
    return P


def _cost(est: Any, X: Matrix) -> dict[str, float]:
    call_ms, per_1k = measure_cost(est, X)
    return {"call_ms": call_ms, "ms_per_1k": per_1k, "row_us": max(per_1k - call_ms, 0.0)}  # (ms/1k rows) = us/row


def add_member(registry: Registry, name: str, path: Path, holdout: Dataset, features: Sequence[str],
               fmt: str | None = None) -> dict[str, Any]:
    """Register a user's fitted model as the next version of ``name`` (module docstring).

    Parameters
    ----------
    registry : Registry
    name : str
    path : Path
        The model file (skops, XGBoost JSON/UBJ, LightGBM text).
    holdout : Dataset
        Labelled rows the model never saw; its ``classes`` fix the class order.
    features : sequence of str
        The model's input columns, in its order.
    fmt : {"skops", "xgboost", "lightgbm"}, optional
        Default: from the file's extension.

    Returns
    -------
    dict
        The new manifest (``id``, ``version``, ``metrics``, ``cost``...).

    Raises
    ------
    ConfigError
        Unreadable or untrusted file, feature or class mismatch, predictions that are not
        probabilities.
    """
    form = infer_format(path, fmt)
    model = load_model(path, form)
    check_features(model, features)
    _, X = _feature_matrix(holdout, features)
    est = as_member(model, holdout.classes, X)
    P = _predict(est, X, len(holdout.classes), f"{path.name}")
    inner = getattr(est, "model", est)
    booster = getattr(inner, "booster_", None)
    kind = inner if booster is None else booster
    family = "boosted_trees" if booster is not None else type(getattr(inner, "steps", [[None, inner]])[-1][1]).__name__
    cost = _cost(est, X)
    manifest = {
        "family": family,
        "features": list(features),
        "classes": holdout.classes,
        "source": {"format": form, "file": path.name, "sha256": sha256_file(path), "type": f"{type(kind).__module__.split('.')[0]}.{type(kind).__name__}"},
        "holdout": {"name": holdout.name, "rows": holdout.n_rows, "fingerprint": holdout.fingerprint()},
        "metrics": _metrics(P, holdout.y),
        "cost_ms_per_1k": cost["ms_per_1k"],
        "call_ms": cost["call_ms"],
        "cost": cost,
        "fit_seconds": 0.0,
    }
    ref = registry.save("models", name, est, manifest)
    return registry.manifest("models", name, ref.version)


def parse_member(registry: Registry, tag: str) -> tuple[str, int]:
    """``name@vN`` (or ``name``: the latest) -> (name, version), checked against the registry."""
    name, sep, v = tag.strip().rpartition("@v")
    if not sep:
        name, v = tag.strip(), ""
    elif not v.isdigit():
        raise ConfigError(f"expected NAME@vN, got {tag!r}")
    versions = registry.versions("models", name)
    if not versions:
        raise ConfigError(f"unknown member {name!r}: no model of that name in {registry.root} (`models add` it)")
    version = int(v) if v else versions[-1]
    if version not in versions:
        raise ConfigError(f"unknown member version {name}@v{version}; versions: "
                          + ", ".join(f"{name}@v{x}" for x in versions))
    return name, version


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_ensemble` wrote: ``ensemble@vN`` and its manifest's ``build`` block."""

    ensemble: str
    version: int
    summary: dict[str, Any]


def _load_members(registry: Registry, tags: Sequence[str], holdout: Dataset) -> tuple[list[Any], list[dict[str, Any]]]:
    refs = [parse_member(registry, t) for t in tags]
    if len(refs) < 2:
        raise ConfigError("an ensemble needs at least two members (--members a@v1,b@v2)")
    names = [n for n, _ in refs]
    if len(set(names)) != len(names):
        raise ConfigError(f"one version per member name: {', '.join(tags)}")
    ests, manifests = [], []
    for n, v in refs:
        est, mm = registry.load("models", n, v)
        ests.append(est)
        manifests.append(mm)
    for mm in manifests:
        if "source" not in mm:  # `train`'s members read standardised features, these raw ones
            raise ConfigError(f"{mm['id']}@v{mm['version']} was trained by `stream-ensemble train` on its own "
                              "encoding; `ensemble build` takes members registered with `models add`")
    first = manifests[0]
    for mm in manifests[1:]:
        if list(mm["features"]) != list(first["features"]):
            raise ConfigError(f"feature mismatch: {mm['id']}@v{mm['version']} takes {mm['features'][:6]}..., "
                              f"{first['id']}@v{first['version']} takes {first['features'][:6]}... "
                              "(members of one ensemble read the same features in the same order)")
    for mm in manifests:
        if list(mm.get("classes") or []) != list(holdout.classes):
            raise ConfigError(f"class mismatch: {mm['id']}@v{mm['version']} has classes {mm.get('classes')}, "
                              f"the holdout {holdout.classes} (same --label and --positive as at `models add`?)")
    return ests, manifests


def _member_fit(mf: MemberFit, rows: np.ndarray, P: np.ndarray) -> MemberFit:
    return MemberFit(mf.names, mf.families, mf.estimators, P[rows], mf.costs_ms_per_1k, mf.fit_seconds,
                     mf.n_classes, call_ms=mf.call_ms)


def _build_on(mf: MemberFit, rows: np.ndarray, P: np.ndarray, X: Matrix, y: np.ndarray, cfg: BuildConfig,
              seed: int) -> BuiltEnsemble:
    fit, cal = (rows[p] for p in stratified_split(y[rows], FIT_FRACTIONS, seed))
    return build_on_members(_member_fit(mf, fit, P), X[fit], y[fit], X[cal], y[cal], cfg)


def _served(built: BuiltEnsemble, P: np.ndarray, X: Matrix) -> dict[str, np.ndarray]:
    st = built.strategies[built.default]
    run = st.required_members(np.ones(P.shape[1], dtype=bool))
    avail = np.broadcast_to(run, P.shape[:2]).copy()
    return built.score(np.where(avail[:, :, None], P, np.nan), avail, X)


def _crossfit(mf: MemberFit, P: np.ndarray, X: Matrix, y: np.ndarray, cfg: BuildConfig, folds: int,
              say: Callable[[str], None]) -> dict[str, Any]:
    """Every holdout row scored by an ensemble built on the other folds (module docstring)."""
    proba = np.full((y.size, mf.n_classes), np.nan)
    covered = np.zeros(y.size, dtype=bool)
    size = np.zeros(y.size)
    chosen: list[str] = []
    splits = StratifiedKFold(folds, shuffle=True, random_state=cfg.random_state).split(X, y)
    for i, (tr, te) in enumerate(splits):
        say(f"cross-fit fold {i + 1}/{folds}: building on {tr.size} rows, scoring {te.size}")
        built = _build_on(mf, tr, P, X, y, cfg, cfg.random_state + i)
        out = _served(built, P[te], X[te])
        proba[te] = out["proba"]
        covered[te] = out["prediction_set"][np.arange(te.size), y[te]]
        size[te] = out["prediction_set"].sum(axis=1)
        chosen.append(built.default)
    return {"folds": folds, "rows": int(y.size), "metrics": _metrics(proba, y),
            "conformal_coverage": float(covered.mean()), "mean_set_size": float(size.mean()),
            "strategies_chosen": chosen}


def build_ensemble(registry: Registry, name: str, tags: Sequence[str], holdout: Dataset, *,
                   config: BuildConfig | None = None, folds: int = 5,
                   progress: Callable[[str], None] | None = None) -> BuildResult:
    """Build and register a new version of ensemble ``name`` from registered members (module docstring).

    Parameters
    ----------
    registry : Registry
    name : str
    tags : sequence of str
        Members, ``name@vN`` (a bare name is its latest version).
    holdout : Dataset
        Labelled rows none of the members saw; must carry every member feature.
    config : BuildConfig, optional
        Strategy choice, selection constraints, calibration, conformal level.
    folds : int, default=5
        Folds of the cross-fitted report.
    progress : callable, optional

    Returns
    -------
    BuildResult

    Raises
    ------
    ConfigError
        Unknown member versions, feature or class mismatch, too few holdout rows.
    """
    say = progress or (lambda _msg: None)
    cfg = config or BuildConfig()
    ests, manifests = _load_members(registry, tags, holdout)
    features = list(manifests[0]["features"])
    enc, X = _feature_matrix(holdout, features)
    y = holdout.y.astype(np.int64)
    k = len(holdout.classes)
    need = 2 * folds
    counts = np.bincount(y, minlength=k)
    if not folds >= 2 or counts.min() < need:
        raise ConfigError(f"the holdout needs at least {need} rows of every class for {folds} folds "
                          f"(class counts {counts.tolist()}); pass a larger --holdout or fewer --folds")
    served = [served_form(e) for e in ests]
    try:
        P = predict_members(served, X, n_classes=k)
    except ModelPoolError as exc:
        raise ConfigError(f"a member cannot predict on the holdout: {one_line(exc)}") from exc
    mf = MemberFit([str(m["id"]) for m in manifests], [str(m.get("family", "")) for m in manifests], served, P,
                   np.array([float(m["cost_ms_per_1k"]) for m in manifests]), np.zeros(len(manifests)), k,
                   call_ms=np.array([float(m.get("call_ms", 0.0)) for m in manifests]))
    report = _crossfit(mf, P, X, y, cfg, folds, say)
    say(f"building the served version on all {y.size} holdout rows")
    built = _build_on(mf, np.arange(y.size), P, X, y, cfg, cfg.random_state)
    strategy = built.default
    if cfg.strategy == AUTO:
        # The procedure's figures above include choosing a strategy per fold; these are the served one's.
        say(f"cross-fitting the served strategy {strategy} alone")
        fixed = _crossfit(mf, P, X, y, replace(cfg, strategy=strategy), folds, say)
        served_cf = {"strategy": strategy, **{k: fixed[k] for k in ("metrics", "conformal_coverage", "mean_set_size")}}
    else:
        served_cf = {"strategy": strategy, **{k: report[k] for k in ("metrics", "conformal_coverage", "mean_set_size")}}
    st = built.strategies[strategy]
    selected = _selected(st)
    sel = [j for j, n in enumerate(mf.names) if n in selected]
    members = {f"{m['id']}@v{m['version']}": _metrics(P[:, j], y) for j, m in enumerate(manifests)}
    best = min(members, key=lambda t: members[t].get("log_loss", math.inf))
    summary = {
        **report,
        "served_strategy": served_cf,
        "members": members,
        "best_single": {"member": best, **members[best]},
        "cost": {"call_ms": float(mf.call_ms[sel].sum()), "ms_per_1k": float(mf.costs_ms_per_1k[sel].sum())},
        "protocol": f"members' predictions on holdout rows they never saw; selection, combiner and calibrator on "
                    f"{FIT_FRACTIONS[0]:.0%} of the rows, conformal sets and choices on the rest; metrics "
                    f"cross-fitted over {folds} folds",
    }
    payload = {"encoder": enc, "strategy": st, "calibrator": built.calibrators.get(strategy),
               "conformal": built.conformals.get(strategy), "class_names": holdout.classes,
               "confidence_measure": built.confidence_measures.get(strategy)}
    smoke = [{f: r[f] for f in features} for r in holdout.records(np.arange(min(SMOKE_ROWS, holdout.n_rows)))]
    ref = registry.save("ensembles", name, payload, {
        "built_from": BUILT_FROM,
        "strategy": strategy,
        "members": list(members),
        "selected": selected,
        "dataset": holdout.name,
        "data_fingerprint": holdout.fingerprint(),
        "classes": holdout.classes,
        "features": features,
        "smoke_rows": smoke,
        "confidence_measure": built.confidence_measures.get(strategy),
        "conformal": _conformal_settings(built.conformals.get(strategy)),
        "confidence_error_auroc": built.confidence_auroc.get(strategy, {}),
        "metrics": served_cf["metrics"],  # what `ensemble list` shows: the served strategy's, cross-fitted
        "strategy_choice": built.strategy_choice.as_dict() if built.strategy_choice else
        {"chosen": strategy, "runner_up": None, "rule": "configured by name"},
        "calibration_method": _calibration_method(built.calibrators.get(strategy)),
        "build": summary,
    })
    say(f"saved ensemble {ref.tag} (strategy {strategy}, members {', '.join(selected)})")
    return BuildResult(name, ref.version, summary)


__all__ = ["BUILT_FROM", "BuildResult", "add_member", "build_ensemble", "parse_member"]
