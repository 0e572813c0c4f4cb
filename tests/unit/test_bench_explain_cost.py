"""``stream-ensemble bench explain-cost``: a real (small) trained ensemble, timed per level."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stream_ensemble.cli import main
from stream_ensemble.cli.bench import bench


def test_explain_cost_times_every_level_on_a_trained_ensemble(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    trained = CliRunner().invoke(main, ["train", "--registry", str(reg), "--pool", "large", "--pool-size", "4"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "cost.json"
    res = CliRunner().invoke(bench, ["explain-cost", "--registry", str(reg), "--batch", "40", "--repeats", "1",
                                     "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["batch"] == 40 and doc["n_features"] == 30 and doc["members_run"] >= 1
    assert set(doc["us_per_event"]) == {"none", "summary", "full"}
    assert all(v > 0 for v in doc["us_per_event"].values())
    assert "| `full` |" in out.with_suffix(".md").read_text()


def test_explain_cost_without_an_ensemble_is_one_clear_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(bench, ["explain-cost", "--registry", str(tmp_path / "none")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("Error: no ensemble 'default'") and len(res.output.strip().splitlines()) == 1
