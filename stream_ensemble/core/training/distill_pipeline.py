"""Distil a registered ensemble version into a one-member ensemble version of the same name.

Steps (:mod:`stream_ensemble.core.training.distill` has the student protocol):

1. Load ``NAME@vN`` and check that ``data`` is what it was trained on (the manifest's data
   fingerprint); redo its split (fractions and seed from the manifest) and encode with its own
   encoder, so fit / calibration / holdout rows are exactly the teacher's.
2. Recompute the teacher's out-of-fold member predictions on the fit rows: each member the
   teacher's strategy runs is cloned from its registered version (same hyperparameters, tuned
   ones included) and cross-validated with the build's folds (5, seeded like the split). The
   served strategy and calibrator over them are the soft targets.
3. Fit and calibrate the student; put it in the registry as a model and as a new version of
   ``NAME`` whose strategy (``soft_voting_all`` over one member) serves it unchanged: the worker,
   ``deploy`` and ``ab start --challenger`` see an ordinary ensemble version.
4. On the holdout rows (never seen by teacher or student): log loss, accuracy, ROC AUC and Brier
   of the teacher, the best single member (lowest log loss on the calibration part) and the
   student; each one's cost measured in the same run the way ``train`` measures member cost
   (:func:`~stream_ensemble.core.members.oof.measure_cost`; a teacher's cost is the sum over
   the members it runs). All of it goes in the new version's manifest under ``distillation``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from stream_ensemble.core.confidence.conformal import ConformalClassifier
from stream_ensemble.core.data.datasets import Dataset, stratified_split
from stream_ensemble.core.evaluation import evaluate
from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.core.members.flat_forest import served_form
from stream_ensemble.core.members.oof import fit_members, measure_cost, predict_members
from stream_ensemble.core.registry.store import Registry
from stream_ensemble.core.strategies import fit_strategy
from stream_ensemble.core.training.distill import calibrate, fit_student, kept_share, teacher_oof
from stream_ensemble.core.training.pipeline import _calibration_method, _conformal_settings
from stream_ensemble.errors import ConfigError

#: Metrics reported per model on the holdout rows.
TEST_METRICS = ("log_loss", "accuracy", "roc_auc", "brier")
#: Strategy of a distilled version: the mean of one member is that member.
STUDENT_STRATEGY = "soft_voting_all"
#: Confidence served with a student (one member: no disagreement to measure).
STUDENT_CONFIDENCE = "top_proba"


@dataclass(frozen=True)
class DistillResult:
    """What :func:`distill` wrote.

    Attributes
    ----------
    ensemble : str
    version : int
        The new (student) version of ``ensemble``.
    teacher : str
        ``NAME@vN`` distilled.
    student_model : str
        ``model@vK`` of the student in the registry.
    summary : dict
        The manifest's ``distillation`` block (test metrics, costs, kept share, cost ratio).
    """

    ensemble: str
    version: int
    teacher: str
    student_model: str
    summary: dict[str, Any]


def _metrics(p: np.ndarray, y: np.ndarray, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in evaluate(p, y).items() if k in TEST_METRICS and not math.isnan(v)}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _cost(estimators: list[Any], X: np.ndarray) -> dict[str, float]:
    """Summed per-call and per-1k-row cost of running ``estimators`` (each served form, timed alone)."""
    calls, per_1k = zip(*(measure_cost(e, X) for e in estimators), strict=True)
    return {"call_ms": float(sum(calls)), "ms_per_1k": float(sum(per_1k))}


def distill(
    registry: Registry,
    name: str,
    version: int,
    data: Dataset,
    *,
    student: str = "lightgbm",
    n_folds: int = 5,
    progress: Callable[[str], None] | None = None,
) -> DistillResult:
    """Distil ``name@v{version}`` into a new version of ``name`` (module docstring).

    Parameters
    ----------
    registry : Registry
    name : str
    version : int
    data : Dataset
        The dataset the teacher was trained on (checked by fingerprint).
    student : {"lightgbm", "hist_gb"}
    n_folds : int, default=5
        Folds of the recomputed OOF predictions (``BuildConfig.n_folds`` of the teacher).
    progress : callable, optional
        Receives a short message per step.

    Returns
    -------
    DistillResult

    Raises
    ------
    ModelPoolError
        No such ensemble or version, or a member is missing.
    IntegrityError
        A registered artifact was modified.
    ConfigError
        ``data`` is not the teacher's training data, or an unknown student.
    """
    say = progress or (lambda _msg: None)
    payload, manifest = registry.load("ensembles", name, version)
    teacher = f"{name}@v{version}"
    if manifest.get("built_from") == "holdout":  # `ensemble build`: members fit elsewhere, no training data here
        raise ConfigError(f"{teacher} was built from your own models on a holdout (`ensemble build`); distill "
                          "needs an ensemble trained by `stream-ensemble train`")
    if data.fingerprint() != manifest.get("data_fingerprint"):
        raise ConfigError(f"the data given ({data.name}, {data.n_rows} rows) is not what {teacher} was trained on "
                          f"({manifest.get('dataset')}); pass its training data with --data")
    split = manifest.get("split") or {}
    seed = int(split.get("random_state", 0))
    parts = stratified_split(data.y, tuple(split.get("fractions", (0.6, 0.2, 0.2))), seed)
    if "holdout_rows" in manifest and not np.array_equal(parts[2], np.asarray(manifest["holdout_rows"])):
        raise ConfigError(f"re-splitting the data does not give {teacher}'s holdout rows; cannot distil honestly")
    enc = payload["encoder"]
    (Xf, yf), (Xc, yc), (Xt, yt) = [
        (enc.transform_columns(s.columns), s.y.astype(np.int64)) for s in (data.subset(p) for p in parts)]
    members = []
    for tag in manifest["members"]:
        mname, _, v = tag.rpartition("@v")
        est, mm = registry.load("models", mname, int(v))
        members.append((mname, str(mm.get("family", "")), est))
    strategy, calibrator = payload["strategy"], payload["calibrator"]
    run = np.asarray(strategy.required_members(np.ones(len(members), dtype=bool)), dtype=bool)

    say(f"refitting {int(run.sum())} member(s) of {teacher} out of fold")
    specs = [ModelSpec(m, fam, clone(est)) for (m, fam, est), r in zip(members, run, strict=True) if r]
    mf = fit_members(specs, Xf, yf, n_folds=n_folds, random_state=seed, progress=say)
    if mf.failed:
        raise ConfigError(f"cannot recompute the teacher's OOF predictions: {mf.failed}")
    k = len(payload["class_names"])
    P_oof = np.full((Xf.shape[0], len(members), k), np.nan)
    P_oof[:, run] = mf.P_oof
    soft = teacher_oof(strategy, calibrator, P_oof, Xf)

    say(f"fitting the {student} student to the soft targets")
    st = fit_student(student, Xf, soft, Xc, yc, random_state=seed)

    say("scoring the holdout rows")
    served = [served_form(est) for _, _, est in members]
    P_cal = predict_members(served, Xc, n_classes=k)
    P_test = predict_members(served, Xt, n_classes=k, run=run)
    avail = np.broadcast_to(run, P_test.shape[:2]).copy()
    p_teacher = calibrate(calibrator, strategy.predict_proba(P_test, avail, Xt))
    best = int(np.argmin([evaluate(P_cal[:, j], yc)["log_loss"] for j in range(len(members))]))
    p_best = predict_members([served[best]], Xt, n_classes=k)[:, 0]
    p_student = st.predict_proba(Xt)
    test = {"teacher": _metrics(p_teacher, yt), "best_single": {"member": members[best][0], **_metrics(p_best, yt)},
            "student": _metrics(p_student, yt)}
    cost = {"teacher": _cost([s for s, r in zip(served, run, strict=True) if r], Xf),
            "best_single": _cost([served[best]], Xf), "student": _cost([st.estimator], Xf)}
    summary: dict[str, Any] = {
        "teacher": teacher,
        "student": {"kind": student, "rounds": st.rounds, "fit_seconds": st.fit_seconds,
                    "stop_cross_entropy": st.stop_cross_entropy},
        "soft_targets": f"teacher's calibrated served probabilities on {n_folds}-fold out-of-fold member "
                        f"predictions of the {Xf.shape[0]} fit rows",
        "test_rows": int(yt.shape[0]),
        "test": test,
        "cost": cost,
        # None (JSON null) when the teacher is no better than its best single member: no gain to keep.
        "kept_share": _finite(kept_share(test["best_single"]["log_loss"], test["teacher"]["log_loss"],
                                         test["student"]["log_loss"])),
        "cost_ratio": _finite(cost["student"]["ms_per_1k"] / cost["teacher"]["ms_per_1k"])
        if cost["teacher"]["ms_per_1k"] > 0 else None,
        "decision_agreement": float(np.mean(p_student.argmax(axis=1) == p_teacher.argmax(axis=1))),
        "mean_abs_proba_diff": float(np.abs(p_student - p_teacher).max(axis=1).mean()),
        "load_average": float(os.getloadavg()[0]),
    }

    mname = f"{name}-distilled-{student}"
    raw_cal = st.raw_proba(Xc)
    mref = registry.save("models", mname, st.estimator, {
        "family": "boosted_trees",
        "features": enc.feature_names_,
        "classes": manifest.get("classes"),
        "data_fingerprint": manifest.get("data_fingerprint"),
        "dataset": manifest.get("dataset"),
        "metrics": _metrics(raw_cal, yc),
        "cost_ms_per_1k": cost["student"]["ms_per_1k"],
        "call_ms": cost["student"]["call_ms"],
        "fit_seconds": st.fit_seconds,
        "distilled_from": teacher,
    })
    one = fit_strategy(STUDENT_STRATEGY, raw_cal[:, None, :], yc, costs=np.array([cost["student"]["ms_per_1k"]]),
                       member_names=[mname], random_state=seed)
    conf_settings = manifest.get("conformal") or {}
    conformal = ConformalClassifier(float(conf_settings.get("alpha", 0.1)), bool(conf_settings.get("mondrian", False)),
                                    bool(conf_settings.get("randomized", True)))
    conformal.fit(calibrate(st.calibrator, raw_cal, clip=False), yc)
    new_payload = {"encoder": enc, "strategy": one, "calibrator": st.calibrator, "conformal": conformal,
                   "class_names": payload["class_names"], "confidence_measure": STUDENT_CONFIDENCE}
    kept = ("dataset", "data_fingerprint", "classes", "split", "holdout_rows", "smoke_rows")
    ref = registry.save("ensembles", name, new_payload, {
        **{key: manifest[key] for key in kept if key in manifest},
        "strategy": STUDENT_STRATEGY,
        "members": [mref.tag],
        "selected": [mname],
        "confidence_measure": STUDENT_CONFIDENCE,
        "conformal": _conformal_settings(conformal),
        "metrics": {**_metrics(raw_cal, yc), **_metrics(st.predict_proba(Xc), yc, "calibrated_")},
        "strategy_choice": {"chosen": STUDENT_STRATEGY, "runner_up": None, "rule": f"distilled student of {teacher}"},
        "calibration_method": _calibration_method(st.calibrator),
        "distillation": summary,
    })
    say(f"saved ensemble {ref.tag} (student of {teacher})")
    return DistillResult(name, ref.version, teacher, mref.tag, summary)
