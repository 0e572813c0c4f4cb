"""Golden outputs: the optimised engine writes what the straightforward one wrote.

``_reference_handle`` is a frozen copy of the engine's output path before the speed work
(dict per body, a doc dict copying it, each encoded separately, cache keys for every event).
The engine must produce the same scored events -- scores, confidence, uncertainty,
prediction sets, member probabilities, explanations at every level -- to 1e-9 on a fixed
batch with cache hits, duplicates in the batch, a member marked down and malformed events.

The one intended change: an explanation lists only the members that ran and those the
all-healthy selection runs (it used to list every member of the pool). The reference builds
the old every-member payload and drops the other members from it. Later additions the
reference follows: the ``imputed`` count first in the body, the cache key over the encoder's
features only (the bytes of the row's ``key_rows``: numeric values before imputation, category
indices), per-event ``explain`` capped (the service here allows ``full``).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import orjson
import pytest

from stream_ensemble.serving.codec import SCHEMA_VERSION, DecodeError, decode_event
from stream_ensemble.serving.degraded import DEGRADED_REASONS
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import InMemoryCache, InMemoryHealth, raw


def _reference_handle(ens: ServingEnsemble, msgs: list[bytes], down: frozenset[str], cache: dict[str, bytes],
                      explain: str = "summary") -> list[dict[str, Any] | str]:
    """Scored docs (or ``"dlq"``) per message, as the engine wrote them before optimising."""
    events = []
    out: list[dict[str, Any] | str] = []
    for m in msgs:
        try:
            events.append(decode_event(m))
            out.append({})
        except DecodeError:
            out.append("dlq")
    healthy = ens.health_vector(down)
    selection = ens.strategy.selection_id(healthy)
    levels = [ev.explain or explain for ev in events]
    enc = ens.encoder.transform_records([ev.features for ev in events])
    keys = [
        f"se:cache:{ens.tag}:{selection}:{lv}:" + hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest()
        for row, lv in zip(enc.key_rows, levels)
    ]
    every = np.ones(len(ens.member_tags), dtype=bool)
    listed = {t for t, r, b in zip(ens.member_tags, ens.strategy.required_members(healthy),
                                   ens.strategy.required_members(every)) if r or b}
    ens.listed_members = lambda run: every  # type: ignore[method-assign]  # the old payload: every member
    try:
        batch = ens.score(enc.X, healthy, [lv for lv, ok in zip(levels, enc.ok) if ok])
        explanations = batch.explanations
    finally:
        del ens.listed_members  # back to the class's method
    for e in explanations:
        if e is not None:
            e["members"] = [m for m in e["members"] if m["model"] in listed]
    ok_rows = np.flatnonzero(enc.ok)
    tags, names = ens.member_tags, ens.class_names
    bodies: dict[int, dict[str, Any]] = {}
    for b, i in enumerate(ok_rows):
        member = np.round(batch.member_positive[b], 6)
        bodies[int(i)] = {
            "imputed": int(enc.imputed[i]),
            "probability": float(np.round(batch.proba[b, 1], 6)),
            "decision": int(batch.decision[b]),
            "label": names[int(batch.decision[b])],
            "confidence": float(np.round(batch.confidence[b], 6)),
            "prediction_set": [k for k in range(len(names)) if batch.prediction_set[b, k]],
            "uncertainty": {k: float(np.round(v[b], 6)) for k, v in batch.uncertainty.items()},
            "models_used": [t for t, u in zip(tags, batch.used[b]) if u],
            "model_probabilities": {t: float(p) for t, p in zip(tags, member) if not math.isnan(p)},
            "degraded": bool(batch.degraded[b] >= 0),
            "degraded_reason": DEGRADED_REASONS[batch.degraded[b]] if batch.degraded[b] >= 0 else None,
            "cache_hit": False,
            "explanation": explanations[b],
        }
    prior = dict(cache)  # duplicates within a batch are scored once, not cache hits
    j = 0
    for pos, o in enumerate(out):
        if o == "dlq":
            continue
        ev, key = events[j], keys[j]
        if key in prior:
            body = orjson.loads(prior[key])
            body["cache_hit"] = True
            if body.get("explanation"):
                body["explanation"]["cache_hit"] = True
        elif j in bodies:
            body = bodies[j]
            if not body["degraded"]:  # degraded scores are never cached
                cache.setdefault(key, orjson.dumps(body))
        else:
            out[pos] = "dlq"
            j += 1
            continue
        out[pos] = {"schema_version": SCHEMA_VERSION, "event_id": ev.event_id, "entity_id": ev.entity_id,
                    "timestamp": ev.timestamp, "ensemble_version": ens.tag, **body, "arm": "champion"}
        j += 1
    return out


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 1e-9, f"{path}: {a} != {b}"
    else:
        assert a == b and type(a) is type(b), f"{path}: {a!r} != {b!r}"


def _batch(records: list[dict]) -> list[bytes]:
    msgs = []
    for i in range(60):
        doc: dict[str, Any] = {"event_id": f"e{i}", "entity_id": f"u{i % 7}", "timestamp": 1.5 + i,
                               "features": records[i % 45]}
        if i % 5 == 1:
            doc["explain"] = "none"
        elif i % 11 == 3:
            doc["explain"] = "full"
        msgs.append(orjson.dumps(doc))
    msgs[13] = b"{not json"
    msgs[29] = orjson.dumps({"event_id": "bad", "entity_id": "u", "timestamp": 1, "features": {**records[0], "mean_radius": "x"}})
    return msgs


@pytest.fixture(scope="module")
def subset_ensemble(small_ensemble: ServingEnsemble) -> ServingEnsemble:
    """Four members, a branch-and-bound selection of at most two: some members never run."""
    from sklearn.dummy import DummyClassifier

    from stream_ensemble.core.members.pool import Member, ModelPool
    from stream_ensemble.core.selection.constraints import SelectionConstraints
    from stream_ensemble.core.strategies import fit_strategy

    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.5 + (y[:, None] - 0.5) * rng.uniform(0.2, 0.9, (n, 4)), 0.01, 0.99)
    P = np.stack([1 - p1, p1], axis=2)
    pool = small_ensemble.pool
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((4, 1)), [0, 1, 0, 1])
    members = [*pool.members, Member("dummy", 1, "dummy", dummy, 0.1)]
    names = [m.name for m in members]
    strategy = fit_strategy("bnb_soft", P, y, costs=np.ones(4), member_names=names,
                            constraints=SelectionConstraints(max_members=2))
    assert 0 < strategy.required_members(np.ones(4, dtype=bool)).sum() < 4
    return ServingEnsemble("sub", 1, small_ensemble.encoder, ModelPool(members, pool.classes_), strategy, None, None,
                           small_ensemble.class_names)


@pytest.mark.parametrize("which", ["small", "subset"])
@pytest.mark.parametrize("down", [frozenset(), frozenset({"naive_bayes"}), frozenset({"logreg"})])
@pytest.mark.parametrize("with_cache", [True, False])
def test_engine_matches_reference(small_ensemble: ServingEnsemble, subset_ensemble: ServingEnsemble,
                                  records: list[dict], down: frozenset[str], with_cache: bool, which: str) -> None:
    if which == "subset":
        small_ensemble = subset_ensemble
    msgs = _batch(records)
    cache = InMemoryCache()
    service = ScoringService(small_ensemble, InMemoryHealth(set(down)), cache if with_cache else None, max_explain="full")
    warm = msgs[:20]  # first pass fills the cache; the second batch mixes hits and misses
    ref_cache: dict[str, bytes] = {}  # filled by the reference when the engine caches
    for passno, batch in enumerate((warm, msgs)):
        expected = _reference_handle(small_ensemble, batch, down, ref_cache if with_cache else {})
        result = service.handle([raw(m, offset=i) for i, m in enumerate(batch)])
        got: list[dict[str, Any] | str] = ["dlq"] * len(batch)
        for _, value, ref in result.scored:
            doc = orjson.loads(value)
            assert doc.pop("scored_at") > 0 and doc.pop("latency_ms") >= 0
            got[ref.offset] = doc
        assert len(result.scored) + len(result.dead_letters) == len(batch)
        _close(expected, got)
        if with_cache:
            assert passno == 0 or result.cache_hits > 0
            assert set(cache.data) == set(ref_cache)
        else:
            assert not cache.data and result.cache_hits == 0
