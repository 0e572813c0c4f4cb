"""CLI: training on any CSV (categorical + missing values), clear one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stream_ensemble.cli import main
from stream_ensemble.core.registry import Registry
from stream_ensemble.serving.loading import load_serving_ensemble


@pytest.fixture()
def csv_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = np.where(x + (color == "red") * 1.5 + rng.normal(scale=0.5, size=n) > 0.7, "yes", "no")
    lines = ["amount,color,age,target"]
    for i in range(n):
        age = "" if i % 13 == 0 else str(20 + i % 50)  # missing values
        col = "?" if i % 17 == 0 else color[i]
        lines.append(f"{x[i]:.4f},{col},{age},{y[i]}")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_on_csv_with_categorical_and_missing(csv_file: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    result = CliRunner().invoke(main, ["train", "--registry", str(reg), "--csv", str(csv_file),
                                       "--label", "target", "--positive", "yes"])
    assert result.exit_code == 0, result.output
    assert "ensemble default@v1" in result.output
    ens = load_serving_ensemble(Registry(reg))
    assert ens.class_names == ["no", "yes"]
    assert ens.encoder.categorical == ["color"] and "color=red" in ens.encoder.output_names_
    manifest = Registry(reg).manifest("models", "logreg")
    assert {"family", "features", "data_fingerprint", "metrics", "cost_ms_per_1k", "sha256"} <= set(manifest)
    assert len(Registry(reg).names("models")) >= 6
    conformal = Registry(reg).manifest("ensembles", "default")["conformal"]
    assert conformal["alpha"] == 0.1 and conformal["randomized"] is True and conformal["mondrian"] is False
    assert conformal["calibration_rows"] == ens.conformal.scores_.shape[0] > 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--csv", "/nonexistent.csv", "--label", "y"], "CSV file not found"),
        (["train", "--label", "y"], "only apply with --csv"),
        (["train", "--strategy", "magic", "--registry", "{tmp}"], "unknown strategy"),
        (["serve", "--batch-size", "0"], "batch-size"),
        (["serve", "--registry", "{tmp}/empty"], "run `stream-ensemble train`"),
    ],
)
def test_bad_arguments_give_one_clear_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (1, 2)
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_csv_label_errors(csv_file: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["train", "--registry", str(tmp_path), "--csv", str(csv_file), "--label", "nope"])
    assert r.exit_code == 2 and "label column 'nope' not found" in r.output
    r = CliRunner().invoke(main, ["train", "--registry", str(tmp_path), "--csv", str(csv_file), "--label", "target", "--positive", "maybe"])
    assert r.exit_code == 2 and "--positive 'maybe'" in r.output
