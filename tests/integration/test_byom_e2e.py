"""Bring your own models, end to end on the real broker and Redis: a model owner trains XGBoost and a
scikit-learn pipeline with plain library code, `models add`s them, `ensemble build`s two versions,
a worker serves the first, `deploy` swaps in the second live, and the scored events come from it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.user_models import LABEL, POSITIVE, train_user_models, user_data

from .conftest import Topics, WorkerProcess, collect, event, produce

pytestmark = pytest.mark.integration


def _cli(prefix: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SE_KEY_PREFIX": prefix, "SE_REDIS_URL": redis_url}
    return subprocess.run([sys.executable, "-m", "stream_ensemble", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_user_models_added_built_deployed_and_scored(servers: dict[str, str], topics: Topics, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io as sio
    import xgboost as xgb

    # --- the model owner's side: their data, their models, their files
    train, holdout, features = user_data()
    paths = train_user_models(tmp_path / "owner", train, features)
    csv = tmp_path / "holdout.csv"
    holdout.to_csv(csv, index=False)
    reg = tmp_path / "registry"
    prefix = f"it{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("SE_KEY_PREFIX", prefix)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        out = _cli(prefix, servers["redis"], *args, "--registry", str(reg))
        assert out.returncode == 0, (args, out.stderr)
        return out

    common = ("--holdout", str(csv), "--label", LABEL, "--positive", POSITIVE)
    added = [orjson.loads(cli("models", "add", name, "--file", str(paths[key]), "--features-from", str(csv), *common,
                              "--json").stdout) for name, key in (("owner_xgb", "xgb_ubj"), ("owner_pipe", "pipeline"))]
    assert [(m["id"], m["version"], m["source"]["format"]) for m in added] == [
        ("owner_xgb", 1, "xgboost"), ("owner_pipe", 1, "skops")]
    v1 = orjson.loads(cli("ensemble", "build", "owner", "--members", "owner_xgb@v1,owner_pipe@v1", *common,
                          "--folds", "3", "--json").stdout)
    v2 = orjson.loads(cli("ensemble", "build", "owner", "--members", "owner_xgb@v1,owner_pipe@v1", *common,
                          "--folds", "3", "--strategy", "soft_voting_all", "--json").stdout)
    assert (v1["ensemble"], v2["ensemble"]) == ("owner@v1", "owner@v2")
    assert v2["metrics"]["accuracy"] > 0.9

    # --- served live: v1 first, then `deploy owner@v2` while events flow
    worker = WorkerProcess(reg, topics, servers, tmp_path / "worker.log", "--ensemble", "owner", "--ensemble-version",
                           "1", "--batch-size", "20", "--cache-ttl", "0")
    rows = holdout[features].to_dict("records")
    labels = (holdout[LABEL] == POSITIVE).to_numpy()
    try:
        produce(servers["bootstrap"], topics.features, [event(i, rows[i], "a") for i in range(40)])
        first = collect(servers["bootstrap"], topics.scores, lambda d: len(d) >= 40)
        assert {d["ensemble_version"] for d in first} == {"owner@v1"}
        out = cli("deploy", "owner@v2", "--who", "ci", "--why", "owner's models, soft vote")
        assert out.stdout.strip() == "owner: (none) -> owner@v2"
        deadline = time.monotonic() + 30
        docs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not any(d["ensemble_version"] == "owner@v2" for d in docs):
            produce(servers["bootstrap"], topics.features, [event(i, rows[i], f"p{int(time.time() * 10)}")
                                                           for i in range(5)])
            docs = collect(servers["bootstrap"], topics.scores, lambda d: False, timeout=1.0)
        n = len(rows)
        produce(servers["bootstrap"], topics.features, [event(i, rows[i], "b") for i in range(n)])
        docs = collect(servers["bootstrap"], topics.scores,
                       lambda d: len({x["event_id"] for x in d if x["event_id"].startswith("b-")}) >= n)
    finally:
        assert worker.terminate() == 0
    scored = {d["event_id"]: d for d in docs if d["event_id"].startswith("b-")}
    assert len(scored) == n  # every event of the last burst scored, none lost
    assert {d["ensemble_version"] for d in scored.values()} == {"owner@v2"}
    ordered = [scored[f"b-{i}"] for i in range(n)]
    assert all(set(d["models_used"]) == {"owner_xgb@v1", "owner_pipe@v1"} for d in ordered)
    # Each member's probability in the event is what the owner's own model says on those raw features.
    X = holdout[features].to_numpy()
    p_xgb = xgb.Booster(model_file=str(paths["xgb_ubj"])).inplace_predict(X)
    pipe = sio.load(paths["pipeline"], trusted=sio.get_untrusted_types(file=paths["pipeline"]))
    p_pipe = pipe.predict_proba(holdout[features])[:, list(pipe.classes_).index(POSITIVE)]
    got_xgb = np.array([d["model_probabilities"]["owner_xgb@v1"] for d in ordered])
    got_pipe = np.array([d["model_probabilities"]["owner_pipe@v1"] for d in ordered])
    np.testing.assert_allclose(got_xgb, p_xgb, atol=2e-6)
    np.testing.assert_allclose(got_pipe, p_pipe, atol=2e-6)
    accuracy = np.mean([(d["label"] == POSITIVE) == y for d, y in zip(ordered, labels)])
    assert accuracy > 0.9
    status = orjson.loads(_cli(prefix, servers["redis"], "deploy", "status", "owner", "--json").stdout)
    assert status["deployed"] == "owner@v2" and status["history"][0]["who"] == "ci"
