"""bench ab-sim: small runs through the CLI write JSON, Markdown and PNG; bad arguments exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stream_ensemble.cli import main


def test_small_run_writes_the_three_files(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(main, [
        "bench", "ab-sim", "--out", str(out), "--experiments", "200", "--max-outcomes", "2000",
        "--look-every", "50", "--power-max-outcomes", "4000", "--effect", "0.1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    aa, power = data["aa"], data["power"]
    assert aa["looks"] == 40
    assert aa["sequential_fpr"] <= aa["fixed_horizon_peeked_fpr"]
    assert aa["fixed_horizon_peeked_fpr"] > 0.05
    assert power["power"] > 0.9 and power["wrong_direction"] == 0  # a 10-point effect is obvious
    assert "anytime-valid" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "fixed-horizon peeked" in result.output


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "ab-sim", "--out", str(tmp_path / "x.json"), "--look-every", "20000"])
    assert result.exit_code == 2
    assert "--look-every" in result.output
