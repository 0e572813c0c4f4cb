"""From the join's merged sums to the experiment's table: per arm metrics, challenger − champion.

Split arms are compared as independent samples; shadow arms paired on the events both
scored (the join keeps the per-event differences). The sequential p-value is the running
minimum of the mixture p-value over every look, so the caller carries it between looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stream_ensemble.core.experiments.guardrail import (
    GuardrailConfig,
    GuardrailTest,
    guardrail_decision,
    winner,
    worse_p,
)
from stream_ensemble.core.experiments.join import HIGHER_IS_BETTER, METRICS, calibration_error, metric_sums
from stream_ensemble.core.experiments.spec import CHAMPION, ExperimentSpec
from stream_ensemble.core.experiments.statistics import MetricSums, compare


def _plain(x: Any) -> float | None:
    v = float(np.asarray(x))
    return v if np.isfinite(v) else None


def arm_table(arm: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Per member (``ensemble`` first): n, each metric's mean and interval, calibration error."""
    out: dict[str, Any] = {}
    members = sorted(arm["members"], key=lambda m: (m != "ensemble", m))
    for member in members:
        sums = arm["members"][member]
        row: dict[str, Any] = {"n": int(sums[0])}
        for metric in METRICS:
            ms = metric_sums(sums, metric)
            low, high = ms.interval(alpha)
            # the normal interval can cross the metric's range (accuracy 0.994 on 500: up to 1.0008)
            top = 1.0 if metric != "log_loss" else np.inf
            low, high = np.clip(low, 0.0, top), np.clip(high, 0.0, top)
            row[metric] = {"mean": _plain(ms.mean()), "low": _plain(low), "high": _plain(high)}
        row["calibration_error"] = calibration_error(sums)
        out[member] = row
    return out


def summarize(spec: ExperimentSpec, merged: Mapping[str, Any], *, metric: str, alpha: float,
              min_outcomes: int, previous_seq_p: Mapping[str, float] | None = None,
              guardrail_test: GuardrailTest = "one-sided",
              previous_worse_p: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The experiment's report at this look.

    Parameters
    ----------
    spec : ExperimentSpec
    merged : mapping
        :func:`~stream_ensemble.core.experiments.join.merge_stats` output (``stats`` by experiment id).
    metric : {"accuracy", "log_loss", "brier"}
        What the comparison, guardrail and winner use.
    alpha : float
    min_outcomes : int
        Outcomes before a look counts: the guardrail needs them in the challenger's arm, the
        sequential p-value (and so the winner) in both arms (the pair count when paired).
    previous_seq_p : mapping arm -> float, optional
        The sequential p-value carried from earlier looks (1.0 when absent).
    guardrail_test : {"one-sided", "two-sided"}
        The guardrail's test (:class:`~.guardrail.GuardrailConfig`).
    previous_worse_p : mapping arm -> float, optional
        The guardrail's one-sided sequential p-value ("challenger worse") carried from earlier
        looks (1.0 when absent).

    Returns
    -------
    dict
        ``arms`` (per arm: version, n, per-member table), ``comparisons`` (per challenger:
        difference, fixed-horizon interval and p-value, confidence sequence, sequential
        p-value, the guardrail's one-sided sequential p-value ``worse_sequential_p_value``,
        guardrail test and decision, winner), ``winner`` (overall: a challenger's tag,
        ``champion`` or ``undecided``).
    """
    exp = merged.get("stats", {}).get(spec.experiment, {"arms": {}, "paired": {}})
    arms_out: dict[str, Any] = {}
    for arm in [CHAMPION, *spec.challengers]:
        a = exp["arms"].get(arm, {"members": {}})
        ens = a["members"].get("ensemble")
        arms_out[arm] = {"version": spec.arm_version(arm), "n": int(ens[0]) if ens else 0,
                         "members": arm_table(a, alpha)}
    cfg = GuardrailConfig(alpha=alpha, min_outcomes=min_outcomes, higher_is_better=HIGHER_IS_BETTER[metric],
                          test=guardrail_test)
    comparisons: dict[str, Any] = {}
    champ = exp["arms"].get(CHAMPION, {"members": {}})["members"].get("ensemble")
    decided: list[str] = []
    for arm in spec.challengers:
        mine = exp["arms"].get(arm, {"members": {}})["members"].get("ensemble")
        zero = MetricSums.zero()
        c_sums = metric_sums(mine, metric) if mine else zero
        k_sums = metric_sums(champ, metric) if champ else zero
        paired = None
        if spec.mode == "shadow":
            p = exp["paired"].get(arm)
            paired = metric_sums(p, metric) if p else zero
        comp = compare(c_sums, k_sums, paired_difference=paired, alpha=alpha)
        n_arm = int(paired.n) if paired is not None else int(c_sums.n)
        n_min = n_arm if paired is not None else int(min(c_sums.n, k_sums.n))
        # Burn-in: the mixture test plugs in sample variances, which are unreliable on a few
        # outcomes; a look before both arms have min_outcomes does not count (skipping early
        # looks keeps the sequential p-value valid: stopping later is still a stopping time).
        counts = n_min >= min_outcomes
        look_p = float(np.asarray(comp.mixture_p)) if counts else 1.0
        seq_p = float(min(look_p, (previous_seq_p or {}).get(arm, 1.0)))
        look_worse = float(worse_p(comp, cfg.higher_is_better)) if counts else 1.0
        seq_worse = float(min(look_worse, (previous_worse_p or {}).get(arm, 1.0)))
        decision = guardrail_decision(comp, n_arm, cfg, sequential_worse_p=seq_worse)
        win = winner(comp, seq_p, cfg)
        comparisons[arm] = {
            "paired": paired is not None, "n": n_arm, **comp.to_dict(), "sequential_p_value": seq_p,
            "worse_sequential_p_value": seq_worse, "guardrail_test": cfg.test, "guardrail": decision, "winner": win,
        }
        if win == "challenger":
            decided.append(arm)
        elif win == "champion":
            decided.append(CHAMPION)
    if any(a != CHAMPION for a in decided):
        best = max((a for a in decided if a != CHAMPION), key=lambda a: comparisons[a]["difference"]
                   * (1 if cfg.higher_is_better else -1))
        overall = best
    elif decided and len(decided) == len(spec.challengers):
        overall = CHAMPION
    else:
        overall = "undecided"
    return {"experiment": spec.experiment, "ensemble": spec.ensemble, "mode": spec.mode, "metric": metric,
            "alpha": alpha, "status": spec.status, "arms": arms_out, "comparisons": comparisons, "winner": overall}
