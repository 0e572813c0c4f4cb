"""The outcome join, pure: scored events and outcomes in, per arm and member sums out.

State lives in *buckets*: plain JSON-ready dicts, one per (join partition, hash of event_id).
Everything one event_id touches -- its pending scores or outcome, its "already joined" marker
and the sums its outcome added -- is in one bucket, so writing the bucket is atomic: a stream
processor that persists each touched bucket before committing its input offsets counts every
outcome exactly once, even when inputs are re-delivered after a crash (a re-delivered score or
outcome finds the event already joined and is counted as a duplicate, not again).

Join rules, whichever side arrives first:

- a scored event (an arm's score of ``event_id``) waits up to ``window_s`` for its outcome;
- an outcome waits up to ``window_s`` for its scores; once joined, its label is kept for
  another ``window_s`` so that a late arm (a shadow score) still joins, and pairs;
- a score never labelled within the window is counted ``scores_unlabelled``; an outcome whose
  score never came is ``outcomes_unknown``, one arriving after its score expired
  ``outcomes_expired``; a second outcome for a joined event ``outcomes_duplicate``.

Per joined (arm, outcome): 1{correct}, log loss and Brier score of the arm's ensemble and of
each member it ran (binary members only), plus top-label calibration bins. Shadow experiments
also keep the paired difference challenger − champion of each metric on the same events.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from stream_ensemble.core.experiments.statistics import MetricSums

METRICS = ("accuracy", "log_loss", "brier")
#: Higher is better for these metrics.
HIGHER_IS_BETTER = {"accuracy": True, "log_loss": False, "brier": False}
ECE_BINS = 10
COUNTERS = ("joined", "scores_unlabelled", "outcomes_unknown", "outcomes_expired", "outcomes_duplicate",
            "scores_duplicate")
_EPS = 1e-15

Bucket = dict[str, Any]
#: Per-metric sums of one member: [n, sum, sum of squares] for each metric, then ECE bins
#: [count, confidence sum, correct sum] * ECE_BINS.
_SUMS_LEN = 1 + 2 * len(METRICS) + 3 * ECE_BINS


def bucket_of(event_id: str, buckets: int) -> int:
    """Bucket index of an event id (stable across processes: CRC-32, not Python's hash)."""
    return zlib.crc32(event_id.encode()) % buckets


def new_bucket() -> Bucket:
    """An empty bucket."""
    return {"pending": {}, "done": {}, "expired": {}, "stats": {}, "counts": dict.fromkeys(COUNTERS, 0)}


def score_record(doc: Mapping[str, Any], shadow: bool) -> dict[str, Any] | None:
    """The part of a scored event the join needs, or None when it belongs to no experiment."""
    experiment, arm = doc.get("experiment"), doc.get("arm")
    if not experiment or not arm or not isinstance(doc.get("event_id"), str):
        return None
    return {
        "experiment": str(experiment), "arm": str(arm), "mode": "shadow" if shadow else str(doc.get("mode") or "split"),
        "version": doc.get("ensemble_version"), "decision": doc.get("decision"), "label": doc.get("label"),
        "probability": doc.get("probability"), "probabilities": doc.get("probabilities"),
        "members": doc.get("model_probabilities") or {},
    }  # fmt: skip


def _true_class_proba(rec: Mapping[str, Any], label: int | str) -> tuple[bool, float, float] | None:
    """(correct, probability of the true class, Brier score) of one arm's score, or None."""
    decision, name, p = rec.get("decision"), rec.get("label"), rec.get("probability")
    probs = rec.get("probabilities")
    if isinstance(probs, dict) and probs:  # K classes: names in class order
        names = list(probs)
        k = label if isinstance(label, int) else (names.index(label) if label in probs else None)
        if k is None or not 0 <= k < len(names):
            return None
        vec = np.array([float(probs[n]) for n in names])
        onehot = np.zeros(len(names))
        onehot[k] = 1.0
        return bool(decision == k), float(vec[k]), float(((vec - onehot) ** 2).sum())
    if not isinstance(p, (int, float)):
        return None
    if isinstance(label, int) and not isinstance(label, bool):
        y = label
    elif label == name:  # binary, label given by name: decided class or the other one
        y = int(decision) if isinstance(decision, int) else -1
    else:
        y = 1 - int(decision) if isinstance(decision, int) else -1
    if y not in (0, 1):
        return None
    p_true = float(p) if y == 1 else 1.0 - float(p)
    return bool(decision == y), p_true, (float(p) - y) ** 2


def _metric_values(correct: bool, p_true: float, brier: float) -> tuple[float, float, float]:
    return float(correct), -math.log(min(max(p_true, _EPS), 1.0)), brier


def _add(sums: list[float], values: tuple[float, float, float], top_p: float) -> None:
    sums[0] += 1
    for j, v in enumerate(values):
        sums[1 + 2 * j] += v
        sums[2 + 2 * j] += v * v
    b = min(int(top_p * ECE_BINS), ECE_BINS - 1)
    base = 1 + 2 * len(METRICS) + 3 * b
    sums[base] += 1
    sums[base + 1] += top_p
    sums[base + 2] += values[0]


def _arm_stats(bucket: Bucket, rec: Mapping[str, Any]) -> dict[str, Any]:
    exp = bucket["stats"].setdefault(rec["experiment"], {"arms": {}, "paired": {}})
    return exp["arms"].setdefault(rec["arm"], {"version": rec.get("version"), "mode": rec.get("mode"), "members": {}})  # type: ignore[no-any-return]


def _join_arm(bucket: Bucket, rec: Mapping[str, Any], label: int | str) -> tuple[float, float, float] | None:
    """Add one arm's joined score to the sums; returns the ensemble's metric values."""
    got = _true_class_proba(rec, label)
    if got is None:
        return None
    correct, p_true, brier = got
    values = _metric_values(correct, p_true, brier)
    arm = _arm_stats(bucket, rec)
    top = _decided_proba(rec)
    _add(arm["members"].setdefault("ensemble", [0.0] * _SUMS_LEN), values, top)
    y = None
    if rec.get("probabilities") is None:  # binary: members carry the positive-class probability
        y = int(rec["decision"]) if correct else 1 - int(rec["decision"])
        for member, p in (rec.get("members") or {}).items():
            if isinstance(p, (int, float)):
                pt = float(p) if y == 1 else 1.0 - float(p)
                mc = (float(p) >= 0.5) == (y == 1)
                _add(arm["members"].setdefault(member, [0.0] * _SUMS_LEN),
                     _metric_values(mc, pt, (float(p) - y) ** 2), max(float(p), 1 - float(p)))
    return values


def _decided_proba(rec: Mapping[str, Any]) -> float:
    """Probability of the decided class (the top-label confidence the calibration bins use)."""
    probs = rec.get("probabilities")
    if isinstance(probs, dict) and probs:
        return float(max(float(v) for v in probs.values()))
    p = float(rec["probability"])
    return max(p, 1.0 - p)


def _pair(bucket: Bucket, experiment: str, arm: str, mine: list[float], champion: list[float]) -> None:
    exp = bucket["stats"].setdefault(experiment, {"arms": {}, "paired": {}})
    sums = exp["paired"].setdefault(arm, [0.0] * (1 + 2 * len(METRICS)))
    sums[0] += 1
    for j in range(len(METRICS)):
        d = mine[j] - champion[j]
        sums[1 + 2 * j] += d
        sums[2 + 2 * j] += d * d


def _joined(bucket: Bucket, event_id: str, done: dict[str, Any], rec: Mapping[str, Any]) -> None:
    """Join one arm's score with the label in ``done`` and pair it with the champion's."""
    arm = rec["arm"]
    values = _join_arm(bucket, rec, done["label"])
    if values is None:
        return
    bucket["counts"]["joined"] += 1
    done["m"][arm] = [*values, rec["experiment"], rec.get("mode")]
    if rec.get("mode") != "shadow" and arm != "champion":
        return
    if arm == "champion":  # pair every shadow arm that joined before the champion
        for other, m in done["m"].items():
            if other != "champion" and m[3] == rec["experiment"] and m[4] == "shadow":
                _pair(bucket, rec["experiment"], other, m[:3], list(values))
    elif "champion" in done["m"]:
        _pair(bucket, rec["experiment"], arm, list(values), done["m"]["champion"][:3])


def apply_score(bucket: Bucket, event_id: str, rec: Mapping[str, Any], now: float) -> None:
    """Add one arm's scored event (from :func:`score_record`)."""
    done = bucket["done"].get(event_id)
    if done is not None:
        if rec["arm"] in done["m"]:
            bucket["counts"]["scores_duplicate"] += 1
        else:
            _joined(bucket, event_id, done, rec)
        return
    pending = bucket["pending"].setdefault(event_id, {"t": now, "scores": {}})
    if rec["arm"] in pending["scores"]:
        bucket["counts"]["scores_duplicate"] += 1
    pending["scores"][rec["arm"]] = dict(rec)
    if "outcome" in pending:
        _complete(bucket, event_id, now)


def apply_outcome(bucket: Bucket, event_id: str, label: int | str, now: float) -> None:
    """Add one outcome (its label)."""
    if event_id in bucket["done"]:
        bucket["counts"]["outcomes_duplicate"] += 1
        return
    if event_id in bucket["expired"]:
        bucket["counts"]["outcomes_expired"] += 1
        del bucket["expired"][event_id]
        return
    pending = bucket["pending"].setdefault(event_id, {"t": now, "scores": {}})
    if "outcome" in pending:
        bucket["counts"]["outcomes_duplicate"] += 1
        return
    pending["outcome"] = label
    if pending["scores"]:
        _complete(bucket, event_id, now)


def _complete(bucket: Bucket, event_id: str, now: float) -> None:
    pending = bucket["pending"].pop(event_id)
    done = {"t": now, "label": pending["outcome"], "m": {}}
    bucket["done"][event_id] = done
    for rec in sorted(pending["scores"].values(), key=lambda r: r["arm"] != "champion"):
        _joined(bucket, event_id, done, rec)


def expire(bucket: Bucket, now: float, window_s: float) -> None:
    """Count and drop what waited longer than ``window_s``."""
    cut = now - window_s
    for event_id in [e for e, p in bucket["pending"].items() if p["t"] < cut]:
        p = bucket["pending"].pop(event_id)
        if "outcome" in p:
            bucket["counts"]["outcomes_unknown"] += 1
        else:
            bucket["counts"]["scores_unlabelled"] += len(p["scores"])
            bucket["expired"][event_id] = now
    for key in ("done", "expired"):
        table = bucket[key]
        for event_id in [e for e, v in table.items() if (v["t"] if isinstance(v, dict) else v) < cut]:
            del table[event_id]


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the ``stats`` and ``counts`` of several buckets (or of merged summaries)."""
    stats: dict[str, Any] = {}
    counts = dict.fromkeys(COUNTERS, 0)
    for part in parts:
        for k, v in part.get("counts", {}).items():
            counts[k] = counts.get(k, 0) + v
        for exp_id, exp in part.get("stats", {}).items():
            into = stats.setdefault(exp_id, {"arms": {}, "paired": {}})
            for arm, a in exp["arms"].items():
                dest = into["arms"].setdefault(arm, {"version": a.get("version"), "mode": a.get("mode"), "members": {}})
                for member, sums in a["members"].items():
                    cur = dest["members"].setdefault(member, [0.0] * len(sums))
                    dest["members"][member] = [x + y for x, y in zip(cur, sums)]
            for arm, sums in exp["paired"].items():
                cur = into["paired"].setdefault(arm, [0.0] * len(sums))
                into["paired"][arm] = [x + y for x, y in zip(cur, sums)]
    return {"stats": stats, "counts": counts}


def metric_sums(sums: list[float], metric: str) -> MetricSums:
    """:class:`MetricSums` of one metric out of a member's (or a pair's) sum list."""
    j = METRICS.index(metric)
    return MetricSums(n=float(sums[0]), total=float(sums[1 + 2 * j]), total_sq=float(sums[2 + 2 * j]))


def calibration_error(sums: list[float]) -> float | None:
    """Top-label expected calibration error from a member's bins (None without outcomes)."""
    base = 1 + 2 * len(METRICS)
    n = sum(sums[base + 3 * b] for b in range(ECE_BINS))
    if n <= 0:
        return None
    err = 0.0
    for b in range(ECE_BINS):
        count, conf, correct = sums[base + 3 * b: base + 3 * b + 3]
        if count > 0:
            err += abs(conf / count - correct / count) * count / n
    return err
