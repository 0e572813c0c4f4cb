"""A K-class (wine, 3 cultivars) ensemble served through the real broker and Redis."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest

from .conftest import Topics, WorkerProcess, collect, event, produce

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "scored_event.json"


@pytest.fixture(scope="module")
def wine_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stream_ensemble.core.data import load_bundled
    from stream_ensemble.core.members.families import default_pool
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training import train

    root = tmp_path_factory.mktemp("wine-registry")
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes", "decision_tree", "knn"}]
    train(load_bundled("wine"), specs, Registry(root))
    return root


def test_wine_ensemble_scores_every_event_with_per_class_probabilities(
        servers: dict[str, str], topics: Topics, wine_registry: Path, tmp_path: Path) -> None:
    from stream_ensemble.core.data import load_bundled

    data = load_bundled("wine")
    rows = data.records()
    n = len(rows)
    produce(servers["bootstrap"], topics.features,
            [event(i, rows[i], prefix="w") for i in range(n)] + [(b"k", b"not json")])
    worker = WorkerProcess(wine_registry, topics, servers, tmp_path / "worker.log")
    try:
        scores = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= n)
        dlq = collect(servers["bootstrap"], topics.dlq, lambda d: len(d) >= 1, timeout=30)
        assert worker.terminate() == 0
    finally:
        worker.kill()
    by_id = {d["event_id"]: d for d in scores}
    assert set(by_id) == {f"w-{i}" for i in range(n)} and len(dlq) == 1
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    decisions = np.empty(n, dtype=np.int64)
    for i in range(n):
        d = by_id[f"w-{i}"]
        d.pop("_received", None)
        assert not list(validator.iter_errors(d)), d
        assert d["schema_version"] == 2 and list(d["probabilities"]) == data.classes
        assert abs(sum(d["probabilities"].values()) - 1.0) < 1e-4
        assert d["label"] == data.classes[d["decision"]] == max(d["probabilities"], key=d["probabilities"].get)
        decisions[i] = d["decision"]
    # Every class is predicted and the decisions track the labels (most rows were trained on).
    assert set(decisions.tolist()) == {0, 1, 2} and np.mean(decisions == data.y) > 0.9
    assert orjson.loads(orjson.dumps(by_id["w-0"]["explanation"]))["members"]
