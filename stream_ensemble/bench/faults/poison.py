"""The poison events of ``bench faults``: the validation gaps and crash inputs of the faults
issue, plus random bytes and hypothesis-generated events.

Each is ``(event_id, kind, value)``; the producer keys the message by the event_id, so its
dead letter names it even when the value cannot be read.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import orjson


def _doc(eid: str, features: dict[str, Any], timestamp: float = 1.7e9) -> bytes:
    return orjson.dumps({"event_id": eid, "entity_id": "poison", "timestamp": timestamp, "features": features})


def _hypothesis_values(names: list[str], n: int, seed: int) -> list[str]:
    """``n`` JSON texts of hostile events (``event_id`` filled in later), from hypothesis.

    Runs a hypothesis property over the strategy and keeps every generated example
    (derandomized: the same ``seed`` gives the same events).
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    value = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                      st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    feats = st.dictionaries(st.one_of(st.sampled_from(names), st.text(max_size=10)), value, max_size=len(names) + 3)
    event = st.fixed_dictionaries(
        {"entity_id": st.one_of(st.text(max_size=300), st.integers(), st.none()),
         "timestamp": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**20), st.text(max_size=5)),
         "features": st.one_of(feats, st.lists(value, max_size=3), st.none())},
        optional={"explain": st.one_of(st.sampled_from(["none", "summary", "full", "all"]), st.integers())})
    out: list[str] = []

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event)
    def collect(doc: dict[str, Any]) -> None:
        out.append(json.dumps({"event_id": "__ID__", **doc}, allow_nan=True))  # NaN/Infinity tokens stay in

    collect()
    return out[:n]


def poison_events(prefix: str, record: dict[str, Any], copies: int = 3, hypothesis_n: int = 100,
                  seed: int = 0) -> list[tuple[str, str, bytes]]:
    """Every poison kind ``copies`` times, then ``hypothesis_n`` generated events.

    Parameters
    ----------
    prefix : str
        The run's event-id prefix (ids are ``prefix-x<j>``).
    record : dict
        A real, valid feature row (each poison breaks it in one way).

    Returns
    -------
    list of (event_id, kind, value)
    """
    rng = random.Random(seed)
    feature_names = list(record)
    first = feature_names[0]
    base = dict(record)
    makers: dict[str, Callable[[str], bytes]] = {
        "numeric_string": lambda e: _doc(e, {**base, first: "17.99"}),
        "nan_string": lambda e: _doc(e, {**base, first: "nan"}),
        "unknown_only": lambda e: _doc(e, {"not_a_feature": 1.0, "mean_radiuss": 2.0}),
        "all_null": lambda e: _doc(e, {n: None for n in feature_names}),
        "plus_1e308": lambda e: _doc(e, {**base, first: 1e308}),
        "minus_1e308": lambda e: _doc(e, {**base, first: -1e308}),
        "timestamp_1e300": lambda e: _doc(e, base, timestamp=1e300),
        "empty_value": lambda e: b"",
        "oversize_800kb": lambda e: _doc(e, {**base, first: "x" * 800_000}),
        "random_bytes": lambda e: rng.randbytes(rng.randint(1, 400)),
    }
    out: list[tuple[str, str, bytes]] = []
    for kind, make in makers.items():
        for _ in range(copies):
            eid = f"{prefix}-x{len(out)}"
            out.append((eid, kind, make(eid)))
    if hypothesis_n:
        for text in _hypothesis_values(feature_names, hypothesis_n, seed):
            eid = f"{prefix}-x{len(out)}"
            out.append((eid, "hypothesis", text.replace("__ID__", eid, 1).encode()))
    rng.shuffle(out)
    return out
