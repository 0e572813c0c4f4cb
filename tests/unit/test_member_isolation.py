"""Per-row isolation of members: a poison row or a bad member never spoils the batch."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import orjson
import pytest

from stream_ensemble.core.members.pool import Member, ModelPool, valid_rows
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import InMemoryHealth, raw


class Fake:
    """predict_proba = 0.3/0.7 per row; ``bad(X)`` says which rows make it misbehave."""

    classes_ = np.arange(2)

    def __init__(self, mode: str, bad=lambda X: X[:, 0] > 100) -> None:
        self.mode, self.bad, self.calls = mode, bad, []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(X.shape[0])
        bad = self.bad(X)
        if self.mode == "raise" and bad.any():
            raise ValueError("Input X contains infinity")
        if self.mode == "always":
            raise RuntimeError("boom")
        if self.mode == "shape":
            return np.full((X.shape[0], 3), 1 / 3)
        out = np.tile([0.3, 0.7], (X.shape[0], 1))
        if self.mode == "range":
            out[bad] = [-0.5, 1.5]
        if self.mode == "nan":
            out[bad] = np.nan
        return out


def pool_of(*estimators: Fake) -> ModelPool:
    return ModelPool([Member(f"m{i}", 1, "fake", e, 1.0) for i, e in enumerate(estimators)], np.arange(2))


def test_valid_rows() -> None:
    out = np.array([[0.3, 0.7], [np.nan, 1.0], [-0.2, 1.2], [0.5, 0.6], [1.0, 0.0], [1.0 + 1e-9, -1e-9]])
    assert valid_rows(out).tolist() == [True, False, False, False, True, True]


@pytest.mark.parametrize("mode", ["raise", "range", "nan"])
@pytest.mark.parametrize("poison", [[0], [517], [3, 4, 900]])
def test_member_failing_on_some_rows_is_dropped_for_those_rows_only(mode: str, poison: list[int]) -> None:
    X = np.zeros((1000, 3))
    X[poison, 0] = 1e6
    bad, good = Fake(mode), Fake("ok")
    run = pool_of(bad, good).proba(X, np.array([True, True]))
    expect = np.ones(1000, dtype=bool)
    expect[poison] = False
    assert run.ok[:, 0].tolist() == expect.tolist() and run.ok[:, 1].all()
    assert np.isnan(run.proba[poison, 0]).all() and np.allclose(run.proba[expect, 0], [0.3, 0.7])
    assert run.failed_rows["m0"] == len(poison) and run.failed["m0"].startswith("failed")
    if mode == "raise":
        assert len(bad.calls) <= 1 + 48, "isolation has a call budget"


def test_non_finite_inputs_are_retried_in_one_call() -> None:
    X = np.zeros((500, 2))
    X[[7, 300], 1] = np.inf
    member = Fake("raise", bad=lambda X: ~np.isfinite(X).all(axis=1))
    run = pool_of(member).proba(X, np.array([True]))
    assert member.calls == [500, 498] and run.ok[:, 0].sum() == 498
    assert "non-finite inputs" in run.failed["m0"]


@pytest.mark.parametrize(("mode", "calls"), [("always", 45), ("shape", 1)])
def test_broken_member_is_dropped_for_the_batch_within_the_budget(mode: str, calls: int) -> None:
    member = Fake(mode)
    run = pool_of(member, Fake("ok")).proba(np.zeros((1000, 2)), np.array([True, True]))
    assert not run.ok[:, 0].any() and run.ok[:, 1].all() and run.failed_rows["m0"] == 1000
    assert len(member.calls) == calls, "a wrong shape is not retried; an exception is bisected within the budget"
    assert sum(member.calls) <= 4 * 1000, "a member failing everywhere costs about three batches at most"


def _with_member(ens: ServingEnsemble, j: int, estimator: object) -> ServingEnsemble:
    out = copy.copy(ens)
    out.pool = copy.copy(ens.pool)
    out.pool.members = list(ens.pool.members)
    old = out.pool.members[j]
    out.pool.members[j] = Member(old.name, old.version, old.family, estimator, old.cost_ms_per_1k)
    return out


def _msg(i: int, features: dict) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "entity_id": f"u{i}", "timestamp": 1.0, "features": features})


def test_poison_row_does_not_degrade_its_neighbours(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    # The case: mean_radius 1e308 overflows in standardisation; logreg then refused the
    # whole batch and the neighbours were scored by fewer members.
    batch = [raw(_msg(i, records[i]), offset=i) for i in range(60)]
    clean = {orjson.loads(v)["event_id"]: orjson.loads(v) for _, v, _ in
             ScoringService(small_ensemble, InMemoryHealth(), None).handle(batch).scored}
    poisoned = list(batch)
    poisoned.insert(30, raw(_msg(999, {**records[0], "mean_radius": 1e308}), offset=60))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning reaches stderr
        res = ScoringService(small_ensemble, InMemoryHealth(), None).handle(poisoned)
    docs = {orjson.loads(v)["event_id"]: orjson.loads(v) for _, v, _ in res.scored}
    for eid, doc in clean.items():
        assert docs[eid]["models_used"] == doc["models_used"] and len(doc["models_used"]) == 3
        assert docs[eid]["probability"] == doc["probability"] and docs[eid]["confidence"] == doc["confidence"]


def test_member_out_of_range_everywhere_is_dropped_not_the_batch(small_ensemble: ServingEnsemble, records: list[dict]) -> None:
    ens = _with_member(small_ensemble, 1, Fake("range", bad=lambda X: np.ones(X.shape[0], dtype=bool)))
    res = ScoringService(ens, InMemoryHealth(), None).handle([raw(_msg(i, records[i]), offset=i) for i in range(200)])
    assert len(res.scored) == 200 and not res.dead_letters
    dropped = ens.pool.members[1].tag
    for _, v, _ in res.scored:
        doc = orjson.loads(v)
        assert dropped not in doc["models_used"] and dropped not in doc["model_probabilities"]
        assert 0.0 <= doc["probability"] <= 1.0
