"""Hot deploy, pure parts: the version holder, the validation gate, the watcher's swap rules."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pytest

from stream_ensemble.core.members.pool import Member, ModelPool
from stream_ensemble.serving.deploy import DeployWatcher
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.serving.versions import (
    LoadedEnsembles,
    parse_tag,
    schema_problem,
    smoke_problem,
    topic_features,
    validate_candidate,
)
from stream_ensemble.testing import InMemoryDeploys, InMemoryHealth, raw


def version_of(ens: ServingEnsemble, v: int) -> ServingEnsemble:
    return ServingEnsemble(ens.name, v, ens.encoder, ens.pool, ens.strategy, ens.calibrator, ens.conformal,
                           ens.class_names, ens.confidence_measure)


class Exploding:
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")


def broken_version(ens: ServingEnsemble, v: int) -> ServingEnsemble:
    first = ens.pool.members[0]
    members = [Member(first.name, first.version, first.family, Exploding(), first.cost_ms_per_1k), *ens.pool.members[1:]]
    return ServingEnsemble(ens.name, v, ens.encoder, ModelPool(members, np.arange(2)), ens.strategy,
                           ens.calibrator, ens.conformal, ens.class_names, ens.confidence_measure)


def renamed_features(ens: ServingEnsemble, v: int) -> ServingEnsemble:
    enc = copy.deepcopy(ens.encoder)
    enc.numeric = [f"other_{c}" for c in enc.numeric]
    return ServingEnsemble(ens.name, v, enc, ens.pool, ens.strategy, ens.calibrator, ens.conformal,
                           ens.class_names, ens.confidence_measure)


def test_parse_tag() -> None:
    assert parse_tag("default@v12") == ("default", 12)
    assert parse_tag("a@b@v3") == ("a@b", 3)
    for bad in ("default", "default@v0", "@v1", "default@3", "default@vx"):
        with pytest.raises(ValueError):
            parse_tag(bad)


def test_validation_passes_a_good_version_refuses_broken_and_incompatible(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    topic = topic_features([small_ensemble])
    assert validate_candidate(version_of(small_ensemble, 2), topic, records[:8]) is None
    assert validate_candidate(version_of(small_ensemble, 2), topic, []) is None  # median rows
    reason = validate_candidate(broken_version(small_ensemble, 3), topic, records[:8])
    assert reason is not None and "failed" in reason and small_ensemble.pool.members[0].name in reason
    reason = validate_candidate(renamed_features(small_ensemble, 4), topic, records[:8])
    assert reason is not None and reason.startswith("feature schema incompatible: 30 feature(s)")
    # a feature seen in the events but not read by the serving version makes a reader compatible
    assert schema_problem({"extra": "numeric"}, topic_features([small_ensemble], {"extra"})) is None
    assert "kind differs" in str(schema_problem({"mean_radius": "categorical"}, topic))
    assert "do not encode" in str(smoke_problem(small_ensemble, [{"mean_radius": "x"}]))


def test_holder_keeps_the_active_and_trims_the_oldest(small_ensemble: ServingEnsemble) -> None:
    held = LoadedEnsembles(small_ensemble, keep=2)
    v2, v3 = version_of(small_ensemble, 2), version_of(small_ensemble, 3)
    held.add(v2)
    assert held.active_tag == "test@v1" and held.tags() == ["test@v1", "test@v2"]
    assert held.activate("test@v2") is v2 and held.active is v2
    held.add(v3)  # over keep=2: v1 (not active, least recent) goes
    assert sorted(held.tags()) == ["test@v2", "test@v3"] and held.get("test@v1") is None
    with pytest.raises(KeyError):
        held.activate("test@v9")


def _watcher(ens: ServingEnsemble, store: InMemoryDeploys, versions: dict[str, ServingEnsemble],
             rows: list[dict], loads: list[str]) -> DeployWatcher:
    def load(name: str, v: int) -> tuple[ServingEnsemble, list[dict[str, Any]]]:
        loads.append(f"{name}@v{v}")
        if f"{name}@v{v}" not in versions:
            raise LookupError(f"ensembles/{name} has no version v{v}")
        return versions[f"{name}@v{v}"], rows
    return DeployWatcher(LoadedEnsembles(ens), store, load)


def test_watcher_swaps_between_batches_refuses_broken_and_rolls_back_without_reload(
        small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    versions = {"test@v2": version_of(small_ensemble, 2), "test@v3": broken_version(small_ensemble, 3)}
    store, loads = InMemoryDeploys(), []
    watcher = _watcher(small_ensemble, store, versions, records[:8], loads)
    service = ScoringService(small_ensemble, InMemoryHealth(), None, cache_ttl_s=0)
    batch = [raw(orjson.dumps({"event_id": f"e{i}", "entity_id": "u", "timestamp": 1.0, "features": records[i]}), offset=i)
             for i in range(10)]

    def versions_scored() -> set[str]:
        return {orjson.loads(v)["ensemble_version"] for _, v, _ in service.handle(batch).scored}

    assert watcher.check_once() is None and watcher.apply(service) is None  # no target: keep v1
    store.target_tag = "test@v2"
    assert watcher.check_once() == "test@v2"
    assert versions_scored() == {"test@v1"}  # loaded, not yet swapped: the batch stays on v1
    assert watcher.apply(service) is versions["test@v2"] and versions_scored() == {"test@v2"}
    store.target_tag = "test@v3"  # broken: refused once, v2 keeps serving
    assert watcher.check_once() is None and watcher.check_once() is None
    assert loads.count("test@v3") == 1 and "failed" in store.refusals["test@v3"]
    assert watcher.apply(service) is None and versions_scored() == {"test@v2"}
    store.target_tag = "test@v9"  # missing
    watcher.check_once()
    assert store.refusals["test@v9"].startswith("cannot load: ensembles/test has no version v9")
    store.target_tag = "test@v1"  # rollback: still held, no reload
    n_loads = len(loads)
    assert watcher.check_once() == "test@v1" and len(loads) == n_loads
    watcher.apply(service)
    assert versions_scored() == {"test@v1"} and watcher.swaps == 2


def test_target_set_back_before_the_swap_cancels_it(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    store = InMemoryDeploys("test@v2")
    watcher = _watcher(small_ensemble, store, {"test@v2": version_of(small_ensemble, 2)}, records[:8], [])
    service = ScoringService(small_ensemble, InMemoryHealth(), None, cache_ttl_s=0)
    assert watcher.check_once() == "test@v2"
    store.target_tag = "test@v1"
    assert watcher.check_once() is None and watcher.apply(service) is None
    assert service.ensemble is small_ensemble
