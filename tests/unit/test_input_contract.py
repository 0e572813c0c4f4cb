"""The input contract of the worker (README, Topics and contracts), on the real engine.

Each refused event goes to the DLQ alone, with its original bytes and a reason naming the
field; its neighbours are scored as if it were not there. Scored events carry ``imputed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import InMemoryCache, InMemoryHealth, raw

SCORED = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "scored_event.json").read_text())


def _msg(eid: str, features: dict, **extra: object) -> bytes:
    return orjson.dumps({"event_id": eid, "entity_id": "u", "timestamp": 1.7e9, "features": features, **extra})


POISON = {
    "string_number": lambda r: _msg("p", {**r, "mean_radius": "17.99"}),
    "string_nan": lambda r: _msg("p", {**r, "mean_texture": "nan"}),
    "only_unknown": lambda r: _msg("p", {f"{k}_typo": v for k, v in r.items()}),
    "all_null": lambda r: _msg("p", dict.fromkeys(r)),
    "plus_1e308": lambda r: _msg("p", {**r, "mean_radius": 1e308}),
    "minus_1e308": lambda r: _msg("p", {**r, "mean_area": -1e308}),
    "timestamp_1e300": lambda r: orjson.dumps({"event_id": "p", "entity_id": "u", "timestamp": 1e300, "features": r}),
    "empty_value": lambda r: b"",
}
KIND = {"string_number": "feature_type", "string_nan": "feature_type", "only_unknown": "too_few_features",
        "all_null": "too_few_features", "plus_1e308": "out_of_range", "minus_1e308": "out_of_range",
        "timestamp_1e300": "schema", "empty_value": "empty"}
NAMED = {"string_number": "mean_radius", "string_nan": "mean_texture", "only_unknown": "unknown features: area_error_typo",
         "plus_1e308": "mean_radius", "minus_1e308": "mean_area", "timestamp_1e300": "timestamp"}


@pytest.mark.parametrize("case", sorted(POISON))
def test_poison_event_is_dead_lettered_alone(small_ensemble: ServingEnsemble, records: list[dict], case: str) -> None:
    good = [raw(_msg(f"e{i}", records[i]), offset=i) for i in range(20)]
    clean = {orjson.loads(v)["event_id"]: orjson.loads(v) for _, v, _ in
             ScoringService(small_ensemble, InMemoryHealth(), None).handle(good).scored}
    poison = raw(POISON[case](records[0]), offset=99)
    res = ScoringService(small_ensemble, InMemoryHealth(), None).handle([*good[:10], poison, *good[10:]])
    assert len(res.dead_letters) == 1 and len(res.scored) == 20
    dead = res.dead_letters[0]
    assert dead.error_type == KIND[case] and dead.raw.value == poison.value and "\n" not in dead.reason
    assert NAMED.get(case, "") in dead.reason
    for _, v, _ in res.scored:  # the neighbours are untouched
        doc = orjson.loads(v)
        ref = clean[doc["event_id"]]
        assert (doc["probability"], doc["models_used"], doc["degraded"]) == (ref["probability"], ref["models_used"], False)


def test_min_known_share_is_configurable(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    width = len(small_ensemble.encoder.feature_names_)
    keep = dict(list(records[0].items())[: width // 4])  # a quarter of the features
    batch = [raw(_msg("q", keep))]
    assert ScoringService(small_ensemble, InMemoryHealth(), None).handle(batch).dead_letters[0].error_type == "too_few_features"
    res = ScoringService(small_ensemble, InMemoryHealth(), None, min_known_share=0.2).handle(batch)
    assert not res.dead_letters and orjson.loads(res.scored[0][1])["imputed"] == width - len(keep)


def test_every_scored_event_counts_its_imputed_features(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    cache = InMemoryCache()
    service = ScoringService(small_ensemble, InMemoryHealth(), cache)
    drops = [0, 1, 3, 7]
    msgs = []
    for i, k in enumerate(drops):
        feats = dict(records[i])
        for name in list(feats)[:k]:
            feats[name] = None if k % 2 else feats.pop(name)  # null or absent: both imputed
        msgs.append(raw(_msg(f"e{i}", feats), offset=i))
    for passno in range(2):  # second pass: from the cache, same count
        docs = [orjson.loads(v) for _, v, _ in service.handle(msgs).scored]
        assert [d["imputed"] for d in docs] == drops
        assert all(d["cache_hit"] is bool(passno) for d in docs)
        for d in docs:
            jsonschema.validate(d, SCORED)


def test_a_field_the_encoder_ignores_does_not_defeat_the_cache(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    cache = InMemoryCache()
    service = ScoringService(small_ensemble, InMemoryHealth(), cache)
    first = service.handle([raw(_msg("a", {**records[3], "nonce": "r-1"}))])
    second = service.handle([raw(_msg("b", {"nonce": "r-2", **records[3]}))])
    assert first.cache_misses == 1 and second.cache_hits == 1 and len(cache.data) == 1
    assert orjson.loads(second.scored[0][1])["probability"] == orjson.loads(first.scored[0][1])["probability"]
    third = service.handle([raw(_msg("c", {**records[3], "mean_radius": records[3]["mean_radius"] + 1.0}))])
    assert third.cache_misses == 1  # a used feature does change the key


@pytest.mark.parametrize(("cap", "default", "asked", "got"), [
    ("summary", "summary", "full", "summary"), ("full", "summary", "full", "full"), ("none", "summary", "full", "summary"),
    ("none", "none", "summary", "none"), ("summary", "summary", "none", "none"), ("summary", "full", "full", "full"),
])
def test_per_event_explain_is_capped(small_ensemble: ServingEnsemble, records: list[dict], cap: str, default: str,
                                     asked: str, got: str) -> None:
    service = ScoringService(small_ensemble, InMemoryHealth(), None, explain=default, max_explain=cap)
    doc = orjson.loads(service.handle([raw(_msg("x", records[0], explain=asked))]).scored[0][1])
    expl = doc["explanation"]
    level = "none" if expl is None else "full" if "feature_attribution" in expl else "summary"
    assert level == got
