"""Training: dataset -> encoder + members (OOF) + strategy + calibration -> registry.

Split protocol (stratified, seeded): ``fit`` rows train the members (and, through
out-of-fold predictions, the strategy), ``calibration`` rows are held out for the
calibrator, conformal sets and the members' validation metrics, and ``holdout`` rows are
never used: their indices go into the ensemble manifest so the demo can replay them as
feature events and measure accuracy on data no part of the ensemble saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_ensemble.core.data.datasets import Dataset, stratified_split
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.core.registry.store import Registry
from stream_ensemble.errors import ModelPoolError

#: Calibration rows stored in an ensemble manifest for the deploy smoke test.
SMOKE_ROWS = 8


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` wrote."""

    ensemble: str
    version: int
    members: list[dict[str, Any]]
    strategy: str
    holdout_rows: int


def train(
    data: Dataset,
    specs: list[ModelSpec],
    registry: Registry,
    *,
    ensemble_name: str = "default",
    build_config: Any = None,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a pool and an ensemble on ``data`` and store them as new registry versions.

    Parameters
    ----------
    data : Dataset
    specs : list of ModelSpec
        Unfitted members (:mod:`stream_ensemble.core.members.families`).
    registry : Registry
    ensemble_name : str
    build_config : BuildConfig, optional
        Strategy, selection constraints, calibration (defaults from :mod:`stream_ensemble.core.training.builder`).
    fractions : (fit, calibration, holdout)
    random_state : int
    progress : callable, optional
        Receives a short message per step.

    Returns
    -------
    TrainResult

    Raises
    ------
    ModelPoolError
        Fewer than two members could be trained.
    """
    from stream_ensemble.core.training.builder import BuildConfig, build

    say = progress or (lambda _msg: None)
    fit_rows, cal_rows, holdout_rows = stratified_split(data.y, fractions, random_state)
    fit, cal = data.subset(fit_rows), data.subset(cal_rows)
    encoder = FeatureEncoder(data.numeric, data.categorical).fit(fit.columns)
    X_fit, X_cal = encoder.transform_columns(fit.columns), encoder.transform_columns(cal.columns)
    config = build_config or BuildConfig(random_state=random_state)
    built = build(specs, X_fit, fit.y, X_cal, cal.y, config, progress=say)
    mf = built.members
    if mf.n_models < 2:
        raise ModelPoolError(f"only {mf.n_models} member(s) trained; failures: {mf.failed}")
    fingerprint = data.fingerprint()
    members: list[dict[str, Any]] = []
    for j, name in enumerate(mf.names):
        metrics = built.member_metrics.get(name, {})
        ref = registry.save(
            "models",
            name,
            mf.estimators[j],
            {
                "family": mf.families[j],
                "features": encoder.feature_names_,
                "classes": data.classes,
                "data_fingerprint": fingerprint,
                "dataset": data.name,
                "metrics": metrics,
                "cost_ms_per_1k": float(mf.costs_ms_per_1k[j]),
                **({"call_ms": float(mf.call_ms[j])} if j < len(mf.call_ms) else {}),
                "fit_seconds": float(mf.fit_seconds[j]),
                **({"search": built.search[name].as_dict()} if name in built.search else {}),
            },
        )
        members.append({"name": name, "version": ref.version, "family": mf.families[j],
                        "cost_ms_per_1k": float(mf.costs_ms_per_1k[j]), "metrics": metrics})
        say(f"saved {ref.tag}")
    strategy = built.default
    payload = {
        "encoder": encoder,
        "strategy": built.strategies[strategy],
        "calibrator": built.calibrators.get(strategy),
        "conformal": built.conformals.get(strategy),
        "class_names": data.classes,
        "confidence_measure": built.confidence_measures.get(strategy),
    }
    ref = registry.save(
        "ensembles",
        ensemble_name,
        payload,
        {
            "strategy": strategy,
            "members": [f"{m['name']}@v{m['version']}" for m in members],
            "selected": _selected(built.strategies[strategy]),
            "dataset": data.name,
            "data_fingerprint": fingerprint,
            "classes": data.classes,
            "split": {"fractions": list(fractions), "random_state": random_state},
            "holdout_rows": holdout_rows.tolist(),
            # Raw feature rows a worker smoke-scores before it serves this version (hot deploy).
            "smoke_rows": cal.records(np.arange(min(SMOKE_ROWS, cal.n_rows))),
            "confidence_measure": built.confidence_measures.get(strategy),
            "conformal": _conformal_settings(built.conformals.get(strategy)),
            "confidence_error_auroc": built.confidence_auroc.get(strategy, {}),
            "metrics": built.strategy_metrics.get(strategy, {}) if hasattr(built, "strategy_metrics") else {},
            # How the served strategy and confidence were chosen (validation rows; runner-up).
            "strategy_choice": built.strategy_choice.as_dict() if built.strategy_choice else
            {"chosen": strategy, "runner_up": None, "rule": "configured by name"},
            "confidence_choice": built.confidence_choices[strategy].as_dict()
            if strategy in built.confidence_choices else None,
            "member_search": {k: v.as_dict() for k, v in built.search.items()},
            "calibration_method": _calibration_method(built.calibrators.get(strategy)),
        },
    )
    say(f"saved ensemble {ref.tag} (strategy {strategy})")
    return TrainResult(ensemble_name, ref.version, members, strategy, int(holdout_rows.size))


def _calibration_method(calibrator: Any) -> str:
    """Name of the fitted calibration map (``temperature`` for K classes, ``none`` if absent)."""
    if calibrator is None:
        return "none"
    method = getattr(calibrator, "method_", None)
    return str(getattr(method, "value", method)) if method is not None else "temperature"


def _conformal_settings(conformal: Any) -> dict[str, Any] | None:
    """What an operator needs to read a ``prediction_set``: level, rule, calibration rows."""
    if conformal is None:
        return None
    return {"alpha": float(conformal.alpha), "mondrian": bool(conformal.mondrian),
            "randomized": bool(getattr(conformal, "randomized", False)),
            "calibration_rows": int(conformal.scores_.shape[0])}


def _selected(strategy: Any) -> list[str]:
    """Members the strategy runs when every member is healthy."""
    names = list(strategy.member_names or [])
    run = strategy.required_members(np.ones(len(names), dtype=bool))
    return [n for n, r in zip(names, run) if r]


def holdout_rows(registry: Registry, name: str = "default", version: int | None = None) -> np.ndarray:
    """Row indices of the dataset that the ensemble never saw (from its manifest)."""
    return np.asarray(registry.manifest("ensembles", name, version)["holdout_rows"], dtype=np.int64)
