"""One look at an experiment: merged sums -> report; apply the guardrail and the ramp in Redis."""

from __future__ import annotations

import logging
import time
from typing import Any

from stream_ensemble.adapters.ab_store import ABStore
from stream_ensemble.config import ABConfig
from stream_ensemble.core.experiments import Ramp
from stream_ensemble.core.experiments.join import merge_stats
from stream_ensemble.core.experiments.spec import ExperimentSpec, format_challengers
from stream_ensemble.core.experiments.summary import summarize
from stream_ensemble.errors import ConfigError

log = logging.getLogger("stream_ensemble.ab")


def report(store: ABStore, ensemble: str, cfg: ABConfig) -> dict[str, Any]:
    """The experiment's report now (no change to Redis).

    Raises
    ------
    ConfigError
        No experiment for ``ensemble``, or its hash is malformed.
    """
    fields = store.read(ensemble)
    if not fields:
        raise ConfigError(f"no experiment for ensemble {ensemble!r} (start one with: stream-ensemble ab start {ensemble} ...)")
    spec = ExperimentSpec.from_fields(ensemble, fields)
    merged = merge_stats(store.partitions(spec.experiment))
    previous = {k[len("seq_p:"):]: float(v) for k, v in fields.items() if k.startswith("seq_p:")}
    worse = {k[len("worse_p:"):]: float(v) for k, v in fields.items() if k.startswith("worse_p:")}
    out = summarize(spec, merged, metric=cfg.metric, alpha=cfg.alpha, min_outcomes=cfg.min_outcomes,
                    previous_seq_p=previous, guardrail_test=cfg.guardrail_test,  # type: ignore[arg-type]
                    previous_worse_p=worse)
    out["join"] = store.counts(cfg.app_id)
    out["challenger_weights"] = dict(spec.challengers)
    return out


def look(store: ABStore, ensemble: str, cfg: ABConfig, now: float | None = None) -> dict[str, Any] | None:
    """Report, then apply: carry the sequential p-values, stop a challenger the guardrail
    condemns (weight 0, ``status: stopped: guardrail``), advance the ramp, append history.

    Returns the report, or None when the experiment is not running.
    """
    fields = store.read(ensemble)
    if not fields or fields.get("status", "running") != "running":
        return None
    spec = ExperimentSpec.from_fields(ensemble, fields)
    rep = report(store, ensemble, cfg)
    updates: dict[str, str] = {f"seq_p:{arm}": repr(c["sequential_p_value"]) for arm, c in rep["comparisons"].items()}
    updates.update({f"worse_p:{arm}": repr(c["worse_sequential_p_value"]) for arm, c in rep["comparisons"].items()})
    weights = dict(spec.challengers)
    stopped = [arm for arm, c in rep["comparisons"].items() if c["guardrail"] == "stop" and weights.get(arm, 0) > 0]
    for arm in stopped:
        weights[arm] = 0.0
        c = rep["comparisons"][arm]
        log.warning("guardrail stopped %s in %s: worse with anytime-valid confidence (%s test; one-sided sequential "
                    "p %.3g, two-sided %.3g, CS [%s, %s])", arm, spec.experiment, c["guardrail_test"],
                    c["worse_sequential_p_value"], c["sequential_p_value"], c["cs_low"], c["cs_high"],
                    extra={"event": "guardrail", "experiment": spec.experiment, "arm": arm, "test": c["guardrail_test"],
                           "worse_sequential_p_value": c["worse_sequential_p_value"],
                           "sequential_p_value": c["sequential_p_value"]})
    if stopped and not any(w > 0 for w in weights.values()):
        updates["status"] = "stopped: guardrail"
    elif spec.ramp and not stopped:
        ramp = Ramp.parse(spec.ramp, cfg.outcomes_per_step)
        step = min(spec.ramp_step, len(ramp.steps) - 1)
        base = int(fields.get("ramp_base", "0") or 0)
        n_chal = sum(rep["arms"][a]["n"] for a in spec.challengers)
        new_step, pct = ramp.next_step(step, n_chal - base, "continue")
        if new_step != step:
            weights = {a: (pct if w > 0 else 0.0) for a, w in weights.items()}
            updates.update({"ramp_step": str(new_step), "ramp_base": str(n_chal)})
            log.info("ramp: %s challengers to %g%%", spec.experiment, pct,
                     extra={"event": "ramp", "experiment": spec.experiment, "weight": pct})
    if weights != spec.challengers:
        updates["challengers"] = format_challengers(weights)
        rep["challenger_weights"] = weights
    if "status" in updates:
        rep["status"] = updates["status"]
    store.write(ensemble, updates)
    point = {"t": time.time() if now is None else now,
             "arms": {a: {"n": r["n"], **(r["members"].get("ensemble", {}).get(cfg.metric) or {})} for a, r in rep["arms"].items()},
             "comparisons": {a: {k: c[k] for k in ("difference", "low", "high", "cs_low", "cs_high", "sequential_p_value",
                                                   "worse_sequential_p_value")}
                             for a, c in rep["comparisons"].items()}}
    store.append_history(spec.experiment, point)
    return rep
