"""The ``distilled`` row: one student fit to the default's out-of-fold probabilities, per split.

Per split, after ``build``: the soft targets are the default strategy's calibrated outputs on
the members' OOF predictions of the fit part (:func:`~stream_ensemble.core.training.distill.teacher_oof`),
the student (``BenchConfig.student``) is fit to them and calibrated on the calibration part
(:func:`~stream_ensemble.core.training.distill.fit_student`), and measured on the test part like
every other row. Its cost and the teacher's (the summed cost of the members the default runs)
are timed in the same moment, the way ``build`` times members
(:func:`~stream_ensemble.core.members.oof.measure_cost`), so their ratio is not skewed by a
change of machine load between the build and the student.

Per dataset: ``kept_share`` = (ll(best_single) - ll(distilled)) / (ll(best_single) - ll(default))
on the split-mean test log losses (null where the default is no better than best single: no
gain to keep), ``cost_ratio`` = mean student cost / mean teacher cost (ms per 1,000 rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def distil_split(built: Any, kind: str, X_fit: FloatArray, X_cal: FloatArray, y_cal: npt.NDArray[np.int64],
                 X_test: FloatArray, teacher_test: FloatArray, seed: int) -> tuple[FloatArray, dict[str, float]]:
    """Fit the student of ``built.default`` and score the test rows.

    Parameters
    ----------
    built : BuiltEnsemble
    kind : {"lightgbm", "hist_gb"}
    X_fit : ndarray of shape (n_fit, n_features)
        The rows ``built`` was fit on (its OOF predictions are of these rows).
    X_cal : ndarray of shape (n_cal, n_features)
    y_cal : ndarray of int, shape (n_cal,)
    X_test : ndarray of shape (n_test, n_features)
    teacher_test : ndarray of shape (n_test, n_classes)
        The default's served (calibrated) test probabilities.
    seed : int

    Returns
    -------
    proba : ndarray of shape (n_test, n_classes)
        The calibrated student on the test rows.
    info : dict
        ``student_ms_per_1k``, ``student_call_ms``, ``teacher_ms_per_1k``, ``teacher_call_ms``,
        ``cost_ratio``, ``rounds``, ``fit_s``, ``decision_agreement`` (share of test rows where
        the student decides as the teacher).
    """
    from stream_ensemble.core.members.oof import measure_cost
    from stream_ensemble.core.training.distill import fit_student, teacher_oof

    mf = built.members
    strategy, calibrator = built.strategies[built.default], built.calibrators.get(built.default)
    soft = teacher_oof(strategy, calibrator, mf.P_oof, X_fit)
    student = fit_student(kind, X_fit, soft, X_cal, y_cal, random_state=seed)
    proba = student.predict_proba(X_test)
    run = np.asarray(strategy.required_members(np.ones(mf.n_models, dtype=bool)), dtype=bool)
    teacher = [measure_cost(mf.estimators[j], X_fit) for j in np.flatnonzero(run)]
    s_call, s_1k = measure_cost(student.estimator, X_fit)
    t_call, t_1k = sum(c for c, _ in teacher), sum(k for _, k in teacher)
    return proba, {
        "student_ms_per_1k": s_1k, "student_call_ms": s_call, "teacher_ms_per_1k": t_1k, "teacher_call_ms": t_call,
        "cost_ratio": s_1k / t_1k if t_1k > 0 else math.nan, "rounds": float(student.rounds),
        "fit_s": student.fit_seconds,
        "decision_agreement": float(np.mean(proba.argmax(axis=1) == teacher_test.argmax(axis=1))),
    }


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def aggregate_distilled(methods: Mapping[str, Mapping[str, float]], per_split: Sequence[Mapping[str, float]],
                        per_split_ll: Sequence[tuple[float, float, float]], kind: str | None) -> dict[str, Any] | None:
    """The ``distilled`` entry of one dataset (module docstring), or None when no student ran.

    Parameters
    ----------
    methods : mapping
        Split-mean metrics per method (``best_single``, ``default``, ``distilled``).
    per_split : sequence of dict
        :func:`distil_split` infos, one per split.
    per_split_ll : sequence of (best_single, default, distilled) test log losses
    kind : str or None
        Student family.

    Returns
    -------
    dict or None
    """
    from stream_ensemble.bench.accuracy.config import BEST_SINGLE, DEFAULT, DISTILLED
    from stream_ensemble.core.training.distill import kept_share

    if DISTILLED not in methods or not per_split:
        return None
    ll_b, ll_t, ll_s = (methods[m]["log_loss"] for m in (BEST_SINGLE, DEFAULT, DISTILLED))
    s_1k, t_1k = _mean([i["student_ms_per_1k"] for i in per_split]), _mean([i["teacher_ms_per_1k"] for i in per_split])
    return {
        "student": kind,
        "log_loss": ll_s, "teacher_log_loss": ll_t, "best_single_log_loss": ll_b,
        "kept_share": kept_share(ll_b, ll_t, ll_s),
        "kept_share_per_split": [kept_share(b, t, s) for b, t, s in per_split_ll],
        "student_ms_per_1k": s_1k, "teacher_ms_per_1k": t_1k,
        "student_call_ms": _mean([i["student_call_ms"] for i in per_split]),
        "teacher_call_ms": _mean([i["teacher_call_ms"] for i in per_split]),
        "cost_ratio": s_1k / t_1k if t_1k > 0 else math.nan,
        "cost_ratio_per_split": [i["cost_ratio"] for i in per_split],
        "rounds": _mean([i["rounds"] for i in per_split]),
        "fit_s": _mean([i["fit_s"] for i in per_split]),
        "decision_agreement": _mean([i["decision_agreement"] for i in per_split]),
    }


def summarise_distilled(datasets: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Cross-dataset figures of the ``distilled`` entries and the goal of issue 11.

    Returns
    -------
    summary : dict
        ``per_dataset`` (name -> ``kept_share``, ``cost_ratio``, ``log_loss``), ``kept_share_mean`` and
        ``kept_share_median`` over the datasets where the teacher has a gain, ``cost_ratio_mean``,
        ``cost_ratio_max``, ``no_teacher_gain`` (datasets left out of the kept-share figures).
        Empty when no dataset has a ``distilled`` entry.
    goal : dict or None
        "keeps >= 95% of the gain at a fraction of the cost", checked per dataset.
    """
    entries = {n: e["distilled"] for n, e in datasets.items() if e.get("distilled")}
    if not entries:
        return {}, None
    kept = {n: e["kept_share"] for n, e in entries.items() if math.isfinite(e["kept_share"])}
    ratios = [e["cost_ratio"] for e in entries.values() if math.isfinite(e["cost_ratio"])]
    summary = {
        "per_dataset": {n: {k: e[k] for k in ("kept_share", "cost_ratio", "log_loss")} for n, e in entries.items()},
        "kept_share_mean": _mean(list(kept.values())),
        "kept_share_median": float(np.median(list(kept.values()))) if kept else math.nan,
        "cost_ratio_mean": _mean(ratios),
        "cost_ratio_max": max(ratios) if ratios else math.nan,
        "no_teacher_gain": sorted(set(entries) - set(kept)),
    }
    short = [f"{n} {100 * v:.0f}%" for n, v in kept.items() if v < 0.95]
    dear = [f"{n} x{e['cost_ratio']:.2f}" for n, e in entries.items() if not e["cost_ratio"] < 1.0]
    goal = {"goal": "distilled: keeps >= 95% of the default's log-loss gain over best single, at < 1x its cost "
                    "(per dataset where the default has a gain)",
            "holds": not short and not dear,
            "detail": "; ".join(short + dear) or f"all {len(kept)} datasets with a gain"}
    return summary, goal
