"""Conformal coverage in the accuracy benchmark: what one split measures, and the goal's check.

Per split (:func:`split_coverage`), for every level and for plain and Mondrian thresholds, the
served (randomized) sets' coverage on the test part, overall and among the test rows of each
true class, with the class counts of the calibration and test parts (what the per-class noise
depends on). Mondrian sets promise coverage per class, so their check judges each class too.

The check (:func:`coverage_check`). An exact (randomized) split-conformal predictor covers
``1 - alpha`` in expectation over exchangeable calibration and test rows; what one benchmark
run measures deviates from it by the binomial noise of the test rows plus the spread of the
threshold fit on the calibration rows (:func:`~stream_ensemble.bench.accuracy.noise.coverage_se`;
for one class of a Mondrian set, that class's row counts). The check has two parts, both
needed to hold:

* **per check** (dataset x level x plain/Mondrian x class): a miss of the ±2-point tolerance
  fails only when its two-sided p-value under that noise model
  (:func:`~stream_ensemble.bench.accuracy.noise.coverage_pvalue`, exact rather than normal:
  40 test rows at ``alpha=0.05`` are skewed) is below 5% divided by the number of checks made
  (Bonferroni, with half of the family's 5%: 2.5% / checks). With ~40-80 checks at an
  uncorrected 5% a correct predictor fails somewhere on most runs (1 - 0.95**40 = 0.87); the
  bar holds the chance that *any* check fails by noise near 5%, like the confidence choice's
  bar (:mod:`stream_ensemble.core.training.choice`).
* **pooled** (per level and rule, over the datasets): the mean coverage offset, weighted by
  inverse variance, must be within ``z`` of its own (much smaller) standard error, ``z`` the
  two-sided quantile of the other 2.5% split over the pooled tests (2.73 for four). A protocol
  bug -- calibration rows reused for fitting, a selection effect, a wrong quantile -- shifts
  coverage the same way on every dataset; the pooled test sees a shift of a fraction of a
  point that no single small dataset could.

Every plain ±2-point miss of a dataset's coverage is still listed (``detail``; ``holds_strict``
says whether there was none); the per-class misses of Mondrian sets are listed apart
(``class_detail``): a class with 40 test rows a split measures its coverage to ±3.5 points
(one s.e.), so the plain tolerance is not a fair bar for it, only the noise-aware one is.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from stream_ensemble.bench.accuracy.noise import N_COVERAGE_DRAWS, coverage_pvalue, coverage_se

#: Family-wise false-failure rate of the coverage check (two-sided).
COVERAGE_LEVEL = 0.05
#: Tolerance of the goal, in coverage units.
TOLERANCE = 0.02


def conformal_twin(conformal: Any, mondrian: bool, randomized: bool) -> Any:
    """The same fitted conformal predictor with another thresholding rule.

    ``ConformalClassifier.fit`` stores the per-class scores whatever ``mondrian`` is, so the
    twin uses exactly the rows ``build`` calibrated on, whichever protocol it follows.
    """
    twin = copy.copy(conformal)
    twin.mondrian = mondrian
    twin.randomized = randomized
    return twin


def split_coverage(served: Any, set_proba: npt.ArrayLike, y_test: npt.ArrayLike, u: npt.ArrayLike,
                   alphas: tuple[float, ...] | list[float]) -> list[dict[str, Any]]:
    """Coverage of the served conformal sets on one split's test part.

    Parameters
    ----------
    served : ConformalClassifier
        The fitted predictor ``build`` serves (fit on the calibration part).
    set_proba : array-like of shape (n_test, n_classes)
        The probabilities the served sets are computed on (unclipped, calibrated).
    y_test : array-like of shape (n_test,)
        Integer labels.
    u : array-like of shape (n_test,)
        Tie-breaking uniforms of the test rows (the worker's row hash).
    alphas : sequence of float
        Miscoverage levels.

    Returns
    -------
    list of dict
        Per level and rule: ``alpha``, ``mondrian``, ``randomized``, ``coverage``,
        ``mean_set_size``, the deterministic rule's ``coverage_deterministic`` and
        ``mean_set_size_deterministic``, ``class_coverage`` (n_classes,), ``n_cal_class`` and
        ``n_test_class`` (n_classes,).
    """
    from stream_ensemble.core.confidence.conformal import class_coverage, coverage, mean_set_size

    yt = np.asarray(y_test).astype(np.int64)
    n_cal_class = [int(s.shape[0]) for s in served.class_scores_]
    n_test_class = np.bincount(yt, minlength=served.n_classes_).astype(int).tolist()
    randomized = bool(getattr(served, "randomized", False))

    out: list[dict[str, Any]] = []
    for alpha in alphas:
        for is_m in (False, True):
            sets = conformal_twin(served, is_m, randomized).predict_set(set_proba, alpha=alpha, u=u)
            strict = conformal_twin(served, is_m, False).predict_set(set_proba, alpha=alpha)
            out.append({"alpha": alpha, "mondrian": is_m, "randomized": randomized,
                        "coverage": coverage(sets, yt), "mean_set_size": mean_set_size(sets),
                        "coverage_deterministic": coverage(strict, yt),
                        "mean_set_size_deterministic": mean_set_size(strict),
                        "class_coverage": class_coverage(sets, yt).tolist(),
                        "n_cal_class": n_cal_class, "n_test_class": n_test_class})
    return out


def _checks(datasets: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every judged coverage figure: ``name``, ``alpha``, ``coverage``, row counts, ``se``."""
    rows: list[dict[str, Any]] = []
    for n, e in datasets.items():
        splits = int(e.get("splits", 1))
        for c in e["conformal"]:
            tag = f"{n} α={c['alpha']}{' Mondrian' if c['mondrian'] else ''}"
            counts: list[tuple[int | None, int, int, float]] = [
                (None, int(e.get("n_test", 0)), int(e.get("n_cal", 0)), c["coverage"])]
            if c["mondrian"] and "class_coverage" in c:
                counts += [(k, round(c["n_test_class"][k]), round(c["n_cal_class"][k]), cov)
                           for k, cov in enumerate(c["class_coverage"])
                           if cov is not None and math.isfinite(cov) and round(c["n_test_class"][k]) >= 1]
            for k, n_t, n_c, cov in counts:
                rows.append({"name": tag if k is None else f"{tag} class {k}", "alpha": c["alpha"],
                             "mondrian": c["mondrian"], "class": k, "coverage": cov, "n_test": n_t,
                             "n_cal": n_c, "splits": splits, "se": coverage_se(c["alpha"], n_t, n_c, splits)})
    return rows


def coverage_check(datasets: Mapping[str, Mapping[str, Any]], draws: int = N_COVERAGE_DRAWS) -> dict[str, Any]:
    """The ``conformal_coverage_within_2pts`` goal (module docstring).

    Parameters
    ----------
    datasets : mapping
        Dataset name -> its JSON entry; ``conformal`` holds the split-averaged coverage per
        level and rule (and, for Mondrian, per class with the mean class counts).
    draws : int, default=N_COVERAGE_DRAWS
        Monte Carlo draws of each miss's p-value (:func:`~stream_ensemble.bench.accuracy.noise.coverage_pvalue`).

    Returns
    -------
    dict
        ``goal``, ``holds``, ``holds_strict``, ``detail``, ``checks`` (number judged), ``z``
        (the normal quantile of the per-check level, for reading) and ``pooled`` (per level and
        rule: mean offset, its SE, z).
    """
    rows = _checks(datasets)
    m = max(len(rows), 1)
    keys = sorted({(r["alpha"], r["mondrian"]) for r in rows if r["class"] is None})
    level = COVERAGE_LEVEL / 2 / m  # half the family's 5% to the per-dataset checks
    z = float(norm.isf(level / 2))
    miss: list[str] = []
    class_miss: list[str] = []
    bad: list[str] = []
    for r in rows:
        off = r["coverage"] - (1 - r["alpha"])
        if abs(off) <= TOLERANCE:
            continue
        ratio = abs(off) / r["se"] if r["se"] > 0 else math.inf
        pval = coverage_pvalue(r["coverage"], r["alpha"], r["n_test"], r["n_cal"], r["splits"], draws=draws)
        beyond = pval < level
        (class_miss if r["class"] is not None else miss).append(
            f"{r['name']}: {r['coverage']:.3f} (s.e. {r['se']:.3f}, {ratio:.1f} s.e. off, p {pval:.2g}: "
            f"{'beyond' if beyond else 'within'} noise)")
        if beyond:
            bad.append(r["name"])
    pooled: dict[str, dict[str, float]] = {}
    z_pool = float(norm.isf(COVERAGE_LEVEL / 2 / max(len(keys), 1) / 2))  # the other half to the pooled ones
    for key in keys:
        sel = [r for r in rows if (r["alpha"], r["mondrian"]) == key and r["class"] is None and r["se"] > 0]
        if not sel:
            continue
        w = np.array([1.0 / r["se"] ** 2 for r in sel])
        off = np.array([r["coverage"] - (1 - r["alpha"]) for r in sel])
        mean, se = float((w * off).sum() / w.sum()), float(1.0 / math.sqrt(w.sum()))
        label = f"α={key[0]}{' Mondrian' if key[1] else ''}"
        pooled[label] = {"mean_offset": mean, "se": se, "z": mean / se}
        if abs(mean) > z_pool * se:
            bad.append(f"pooled {label}")
            miss.append(f"pooled {label}: mean offset {100 * mean:+.2f} pts (s.e. {100 * se:.2f}: beyond noise)")
    return {
        "goal": (f"per dataset: conformal coverage within ±2 points of 1-α (Mondrian: also per class), or a "
                 f"two-sided p-value >= 2.5%/{m} checks (Bonferroni; ~{z:.2f} s.e.) under the test rows' binomial "
                 f"and the calibration threshold's Beta; pooled over datasets per level, the inverse-variance "
                 f"mean offset within {z_pool:.2f} of its s.e. (2.5%/{len(keys)} levels, two-sided)"),
        "holds": not bad, "holds_strict": not miss, "checks": m, "z": z, "pooled": pooled,
        "detail": "; ".join(miss) or "all datasets and levels within ±2 points",
        "class_detail": "; ".join(class_miss) or "every class within ±2 points",
    }
