"""``bench ab``'s figures from what the reader saw: share, switch time, stickiness, shadow
identity, outcome counts and the experiment's report.

Phases are cut by the worker's ``scored_at`` clock (same machine as the bench): an event
scored before the weight switch was written was necessarily scored under the old weights.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from scipy.stats import binom

from stream_ensemble.bench.ab_live.procs import Scored
from stream_ensemble.core.experiments.assignment import assign_arms, entity_hashes
from stream_ensemble.core.experiments.spec import CHAMPION, ExperimentSpec

#: Fields of a scored event that may differ between two runs of the same input: the clock
#: (``scored_at``, the batch's ``latency_ms``), the id the bench gives each run's copy, and the
#: experiment's tag, which every scored event carries while one runs (issue 12).
SHADOW_IGNORED = ("event_id", "scored_at", "latency_ms", "experiment")


def arms_by_key(salt: str, keys: Sequence[str], weights: dict[str, float]) -> dict[str, str]:
    """The sticky assignment of each key (recomputed from the salt, as the worker does)."""
    names = list(weights)
    return {k: names[i] for k, i in zip(keys, assign_arms(entity_hashes(salt, list(keys)), weights))}


def expected_shadow(spec: ExperimentSpec, entities: Sequence[str]) -> set[int]:
    """Indices of the events a shadow experiment scores again with the challenger."""
    arms = arms_by_key(spec.salt, sorted(set(entities)), spec.weights())
    return {i for i, e in enumerate(entities) if arms[e] != CHAMPION}


def shadow_figures(docs: dict[str, dict[str, Any]], shadow: Iterable[Scored], n: int, want: set[int],
                   experiment: str) -> dict[str, Any]:
    """Main-topic outputs of the ``x-`` (no experiment) and ``y-`` (shadow) runs, field by field."""
    differing: list[str] = []
    fields: set[str] = set()
    compared = 0
    for i in range(n):
        a, b = docs.get(f"x-{i}"), docs.get(f"y-{i}")
        if a is None or b is None:
            continue
        compared += 1
        a2 = {k: v for k, v in a.items() if k not in SHADOW_IGNORED}
        b2 = {k: v for k, v in b.items() if k not in SHADOW_IGNORED}
        if a2 != b2:
            differing.append(f"{i}")
            fields |= {k for k in set(a2) | set(b2) if a2.get(k) != b2.get(k)}
    side = {r.event_id for r in shadow if r.event_id.startswith("y-")}
    got = {int(e.split("-", 1)[1]) for e in side}
    tagged = sum(1 for i in range(n) if (docs.get(f"y-{i}") or {}).get("experiment") == experiment)
    return {
        "identical": compared == n and not differing, "events": n, "compared": compared,
        "differing": len(differing), "differing_fields": sorted(fields), "ignored_fields": list(SHADOW_IGNORED),
        "main_arms": sorted({str((docs.get(f"y-{i}") or {}).get("arm")) for i in range(n)}),
        "main_tagged_with_experiment": tagged, "shadow_scores": len(side), "shadow_expected": len(want),
        "shadow_as_assigned": got == want,
    }  # fmt: skip


def _violations(rows: Iterable[Scored]) -> tuple[int, dict[str, str]]:
    """Entities seen in more than one arm; each entity's (first) arm."""
    seen: dict[str, set[str]] = defaultdict(set)
    first: dict[str, str] = {}
    for r in rows:
        seen[r.entity].add(r.arm)
        first.setdefault(r.entity, r.arm)
    return sum(1 for a in seen.values() if len(a) > 1), first


def routing(rows: Sequence[Scored], experiment: str, salt: str, challenger: str, fraction: float, switch_to: float,
            marks: dict[str, float]) -> dict[str, Any]:
    """Share, switch time and stickiness of the stream events (``s-``)."""
    stream = [r for r in rows if r.event_id.startswith("s-")]
    ours = [r for r in stream if r.experiment == experiment]
    t_sw = marks["switch"]
    w1 = {CHAMPION: 100 * (1 - fraction), challenger: 100 * fraction}
    w2 = {CHAMPION: 100 * (1 - switch_to), challenger: 100 * switch_to}
    phase1 = [r for r in ours if r.scored_at < t_sw]
    v1, arm1 = _violations(phase1)
    n_ent = len(arm1)
    k = sum(1 for a in arm1.values() if a == challenger)
    lo, hi = (float(binom.ppf(q, n_ent, fraction)) / max(n_ent, 1) for q in (0.005, 0.995))
    entities = sorted({r.entity for r in ours})
    before, after = arms_by_key(salt, entities, w1), arms_by_key(salt, entities, w2)
    movers = {e for e in entities if before[e] == CHAMPION and after[e] == challenger}
    moved_back = sum(1 for e in entities if before[e] == challenger and after[e] == CHAMPION)
    first_new = min((r.scored_at for r in ours if r.scored_at >= t_sw and r.entity in movers and r.arm == challenger),
                    default=None)
    t_stop = marks.get("guardrail", float("inf"))
    phase2 = [r for r in ours if first_new is not None and first_new <= r.scored_at < t_stop - 2.0]
    v2, _ = _violations(phase2)
    mismatch1 = sum(1 for r in phase1 if r.arm != before[r.entity])
    mismatch2 = sum(1 for r in phase2 if r.arm != after[r.entity])
    late = [r for r in stream if r.scored_at > t_stop + 2.0]
    return {
        "observed_fraction": k / max(n_ent, 1), "binomial_99": [lo, hi], "phase1_entities": n_ent,
        "phase1_events": len({r.event_id for r in phase1}),
        "phase1_event_share": sum(1 for r in phase1 if r.arm == challenger) / max(len(phase1), 1),
        "switch_seen_s": None if first_new is None else round(first_new - t_sw, 3),
        "movers": len(movers), "moved_out_of_challenger": moved_back,
        "sticky_violations": v1 + v2, "sticky_violations_by_phase": [v1, v2],
        "phase2_entities": len({r.entity for r in phase2}),
        "assignment_mismatches": mismatch1 + mismatch2,
        "events_after_stop": len(late), "challenger_after_stop": sum(1 for r in late if r.arm == challenger),
        "scored_outside_experiment": sum(1 for r in stream if r.experiment != experiment),
    }  # fmt: skip


def _timeline(rows: Sequence[Scored], challenger: str, t0: float, step: float = 1.0) -> dict[str, list[Any]]:
    """Per ``step`` seconds of the worker's clock: events scored and the challenger's share."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.event_id.startswith("s-"):
            c = counts[int((r.scored_at - t0) // step)]
            c[0] += 1
            c[1] += r.arm == challenger
    n = max(counts, default=-1) + 1
    return {"t": [step * k for k in range(n)], "events": [counts[k][0] if k in counts else 0 for k in range(n)],
            "challenger_share": [counts[k][1] / counts[k][0] if counts.get(k, [0])[0] else None for k in range(n)]}


def _arms(report: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for arm, a in report["arms"].items():
        e = a["members"].get("ensemble") or {}
        acc = e.get("accuracy") or {}
        out[arm] = {"version": a["version"], "n": a["n"], "accuracy": acc.get("mean"),
                    "accuracy_interval": [acc.get("low"), acc.get("high")],
                    "log_loss": (e.get("log_loss") or {}).get("mean")}
    return out


def result(*, cfg: Any, champion: str, challenger: str, description: str, salt: str, rows: Sequence[Scored],
           produced: int, published: int, published_total: int, report: dict[str, Any], history: list[dict[str, Any]],
           status: dict[str, str], marks: dict[str, float], shadow: dict[str, Any],
           exits: dict[str, Any], failures: list[str], join_counts: dict[str, int]) -> dict[str, Any]:
    """The result: the issue's contract keys first, then what they were measured on."""
    route = routing(rows, report["experiment"], salt, challenger, cfg.fraction, cfg.switch_to, marks)
    comp = report["comparisons"][challenger]
    arms = _arms(report)
    t0 = marks["start"]
    stream_ids = {r.event_id for r in rows if r.event_id.startswith("s-")}
    weights_now = status.get("challengers", "")
    return {
        "configured_fraction": cfg.fraction,
        "observed_fraction": round(route["observed_fraction"], 4),
        "binomial_99": [round(x, 4) for x in route["binomial_99"]],
        "switch_seen_s": route["switch_seen_s"],
        "sticky_violations": route["sticky_violations"],
        "shadow_main_identical": shadow["identical"],
        "outcomes_published": published,
        "outcomes_joined": sum(int(a["n"]) for a in arms.values()),
        "arms": arms,
        "p_value": comp["p_value"],
        "sequential_p_value": comp["sequential_p_value"],
        "winner": report["winner"],
        "guardrail_stopped": status.get("status") == "stopped: guardrail" and weights_now.endswith("=0"),
        "outcomes_published_total": published_total,
        # the last look before the guardrail stopped the challenger: outcomes it needed
        "guardrail_after_outcomes": ({a: v.get("n") for a, v in history[-1]["arms"].items()} if history else None),
        "looks": len(history),
        "champion": champion, "challenger": challenger, "challenger_description": description,
        "metric": report["metric"], "alpha": report["alpha"], "comparison": comp,
        "routing": route, "shadow": shadow, "join": join_counts,
        "produced": produced, "scored": len(stream_ids), "lost": produced - len(stream_ids),
        "rate": cfg.rate, "entities": cfg.entities, "switch_to": cfg.switch_to, "phase_s": cfg.phase_s * cfg.time_scale,
        "min_outcomes": cfg.min_outcomes, "experiment_status": status.get("status"), "challenger_weights": weights_now,
        "marks_s": {k: round(v - t0, 3) for k, v in marks.items()},
        "exits": {k: [{**e, "at": round(e["at"] - t0, 3)} for e in v] for k, v in exits.items()},
        "failures": failures[:10], "load_avg": list(os.getloadavg()),
        "timeline": _timeline(rows, challenger, t0), "history": history,
    }  # fmt: skip
