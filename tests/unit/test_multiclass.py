"""K > 2 classes end to end without servers: CSV labels, training, calibration, serving, schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from jsonschema import Draft202012Validator

from stream_ensemble.core.confidence.temperature import TemperatureCalibrator
from stream_ensemble.core.data import load_bundled
from stream_ensemble.core.data.datasets import from_frame
from stream_ensemble.core.members.families import default_pool
from stream_ensemble.core.registry import Registry
from stream_ensemble.core.training import train
from stream_ensemble.core.training.builder import BuildConfig
from stream_ensemble.errors import CombinerError, ConfigError
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.serving.loading import load_serving_ensemble
from stream_ensemble.testing import InMemoryCache, InMemoryHealth, raw

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "scored_event.json").read_text())
FAST = {"logreg", "naive_bayes", "decision_tree", "knn"}


@pytest.fixture(scope="module")
def wine_ensemble(tmp_path_factory: pytest.TempPathFactory) -> ServingEnsemble:
    registry = Registry(tmp_path_factory.mktemp("reg"))
    specs = [s for s in default_pool(0) if s.model_id in FAST]
    result = train(load_bundled("wine"), specs, registry, ensemble_name="wine")
    manifest = registry.manifest("ensembles", "wine")
    # auto: chosen on validation rows among the candidates that take K classes (never boosting).
    assert result.strategy == manifest["strategy_choice"]["chosen"]
    assert set(manifest["strategy_choice"]["scores"]) == {"best_member", "stacking_all", "bnb_stacking", "caruana", "bnb_weighted",
                                                          "bnb_soft", "soft_voting_all"}
    # The rule picks the lowest validation loss unless its lead over best_member is within one
    # paired SE (then best_member, the lowest kept as runner-up); each evidence part is kept.
    choice = manifest["strategy_choice"]
    scores = choice["scores"]
    lowest = min(scores, key=lambda k: scores[k])
    d = choice["detail"]
    if d["guarded"]:
        assert choice["chosen"] == "best_member" and choice["runner_up"] == lowest
        assert d[f"lead:{lowest}"] <= d["guard_z"] * d[f"lead_se:{lowest}"]
    else:
        assert choice["chosen"] == lowest
        assert choice["runner_up"] == sorted(scores, key=lambda k: scores[k])[1]
    assert choice["detail"]["gap"] == pytest.approx(scores[choice["runner_up"]] - scores[choice["chosen"]])
    assert {f"calibration:{k}" for k in scores} <= set(choice["detail"])
    return load_serving_ensemble(registry, "wine")


def test_csv_label_with_k_values_keeps_names_in_sorted_order() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "kind": ["c", "a", "b", "a", "c", "b"]})
    ds = from_frame(frame, "kind", None, "t")
    assert ds.classes == ["a", "b", "c"]
    assert ds.y.tolist() == [2, 0, 1, 0, 2, 1]
    with pytest.raises(ConfigError, match="--positive is only for a binary label"):
        from_frame(frame, "kind", "a", "t")
    with pytest.raises(ConfigError, match="at least 2 values"):
        from_frame(frame.assign(kind="a"), "kind", None, "t")


def test_temperature_scaling_fixes_an_underconfident_mixture() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4))
    logits[np.arange(2000), y] += 2.5
    sharp = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    soft = 0.5 * sharp + 0.5 / 4  # an averaged ensemble: right ranking, too little confidence
    cal = TemperatureCalibrator().fit(soft, y)
    assert cal.temperature_ < 1.0 and cal.log_loss_after_ < cal.log_loss_before_ - 0.05
    q = cal.transform(soft)
    assert np.allclose(q.sum(1), 1.0) and (np.argmax(q, 1) == np.argmax(soft, 1)).all()
    with pytest.raises(CombinerError):
        cal.transform(soft[:, :3])


def test_explicit_binary_only_strategy_is_refused_for_k_classes(tmp_path: Path) -> None:
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes"}]
    with pytest.raises(ConfigError, match="supports binary labels only"):
        train(load_bundled("wine"), specs, Registry(tmp_path), build_config=BuildConfig(strategy="rank_average"))
    with pytest.raises(ConfigError, match="'boosting' supports binary labels only"):
        train(load_bundled("wine"), specs, Registry(tmp_path), build_config=BuildConfig(strategy="boosting"))


def test_wine_events_carry_per_class_probabilities(wine_ensemble: ServingEnsemble) -> None:
    data = load_bundled("wine")
    recs = data.records()
    service = ScoringService(wine_ensemble, InMemoryHealth(), InMemoryCache(), max_explain="full")
    msgs = [raw(orjson.dumps({"event_id": f"e{i}", "entity_id": f"u{i}", "timestamp": 1.0, "features": recs[i],
                              "explain": "full" if i % 2 else "summary"}), offset=i) for i in range(len(recs))]
    result = service.handle(msgs)
    assert len(result.scored) == len(recs) and not result.dead_letters
    docs = [orjson.loads(v) for _, v, _ in result.scored]
    validator = Draft202012Validator(SCHEMA)
    for d in docs:
        assert not list(validator.iter_errors(d)), d
        probs = d["probabilities"]
        assert list(probs) == data.classes and abs(sum(probs.values()) - 1.0) < 1e-4
        assert d["label"] == max(probs, key=probs.__getitem__) == data.classes[d["decision"]]
        assert d["probability"] == probs[d["label"]] and d["schema_version"] == 2
        assert 0.0 <= d["confidence"] <= 1.0 and set(d["prediction_set"]) <= set(range(len(probs)))
        members = d["explanation"]["members"]
        assert {m["model"] for m in members if m["used"]} == set(d["models_used"])
    decisions = np.array([d["decision"] for d in docs])
    # Most rows were trained on, so this only proves the decision tracks the labels.
    assert np.mean(decisions == data.y) > 0.9
    covered = np.mean([int(data.y[i]) in d["prediction_set"] for i, d in enumerate(docs)])
    assert covered >= 0.85


def test_binary_schema_rejects_probabilities_and_v2_requires_them() -> None:
    validator = Draft202012Validator(SCHEMA)
    base = {"schema_version": 1, "event_id": "e", "entity_id": "u", "timestamp": 1, "scored_at": 1,
            "ensemble_version": "x@v1", "imputed": 0, "probability": 0.5, "decision": 1, "label": "y", "confidence": 0.5,
            "models_used": [], "model_probabilities": {}, "degraded": False, "degraded_reason": None, "latency_ms": 1,
            "cache_hit": False, "arm": "champion"}
    assert not list(validator.iter_errors(base))
    assert list(validator.iter_errors({**base, "probabilities": {"a": 0.2, "b": 0.3, "c": 0.5}}))
    assert list(validator.iter_errors({**base, "schema_version": 2}))
    assert not list(validator.iter_errors({**base, "schema_version": 2, "probabilities": {"a": 0.2, "b": 0.3, "c": 0.5}}))


def test_bench_loads_bundled_k_class_datasets_without_a_data_dir() -> None:
    from stream_ensemble.bench import datasets
    from stream_ensemble.cli.bench.accuracy import _loaders

    loaders = _loaders(datasets, None, "wine,digits", None, None, None, None, False, 0)
    assert [len(ld().classes) for ld in loaders] == [3, 10]
    with pytest.raises(ConfigError, match="separately"):
        _loaders(datasets, None, "wine,adult", None, None, None, None, False, 0)
