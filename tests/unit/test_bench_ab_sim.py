"""bench ab-sim: small runs through the CLI write JSON, Markdown and PNG; bad arguments exit 2;
the simulated designs' figures agree with their closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stream_ensemble.bench import ab_sim
from stream_ensemble.cli import main


def test_small_run_writes_the_three_files(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(main, [
        "bench", "ab-sim", "--out", str(out), "--experiments", "200", "--max-outcomes", "2000",
        "--look-every", "50", "--power-max-outcomes", "4000", "--effect", "0.1",
        "--grid-base-accuracies", "0.9", "--grid-fractions", "0.2", "--shadow-correlations", "0.5",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    aa, power = data["aa"], data["power"]
    assert aa["looks"] == 40
    assert aa["sequential_fpr"] <= aa["fixed_horizon_peeked_fpr"]
    assert aa["fixed_horizon_peeked_fpr"] > 0.05
    one = power["one_sided"]
    assert one["power"] > 0.9 and one["wrong_direction"] == 0  # a 10-point effect is obvious
    assert [(g["mode"], g["base_accuracy"]) for g in data["grid"]] == [("split", 0.9), ("shadow", 0.9)]
    assert "anytime-valid" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "fixed-horizon peeked" in result.output
    last = json.loads(result.output.strip().splitlines()[-1])  # the summary line is JSON
    assert set(last["grid_power_by_horizon_one_two_fixed_median"]) == {"split:0.9:0.2", "shadow:0.9:0.5"}


@pytest.mark.parametrize("args", [["--look-every", "20000"], ["--grid-fractions", "0.5,1.5"],
                                  ["--shadow-correlations", "x"], ["--base-accuracy", "0.9", "--shadow-correlations", "0.99"]])
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["bench", "ab-sim", "--out", str(tmp_path / "x.json"), "--experiments", "10", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error:") and "Traceback" not in result.output


def test_designs_match_their_closed_forms() -> None:
    """Guardrail level <= alpha in every design, power ordered one-sided >= two-sided, and the
    simulated fixed-horizon one-sided power within noise of the normal-approximation formula."""
    cfg = ab_sim.SimConfig(experiments=400, max_outcomes=4000, look_every=100, power_max_outcomes=4000, effect=0.04,
                           chunk=200)
    rng = np.random.default_rng(5)
    for design in (ab_sim.Design("split", 0.8, 0.3), ab_sim.Design("shadow", 0.8, 0.5)):
        g = ab_sim.simulate(design, cfg, rng)
        assert g["aa"]["guardrail_one_sided_fpr"] <= cfg.alpha
        assert g["aa"]["fixed_one_sided_peeked_fpr"] > cfg.alpha
        assert g["one_sided"]["power_by_horizon"] >= g["two_sided"]["power_by_horizon"]
        assert g["one_sided"]["power_by_horizon"] <= g["fixed_one_sided_once_power"] + 0.05  # the upper reference
        se = np.sqrt(0.25 / cfg.experiments)
        assert abs(g["fixed_one_sided_once_power"] - g["fixed_one_sided_theory_power"]) < 4 * se
    # pairing: at correlation 0.5 the difference's variance is P(disagree) - effect^2
    cells = ab_sim._shadow_cells(0.8, 0.76, 0.5)
    assert cells.sum() == pytest.approx(1.0) and cells[0] + cells[1] == pytest.approx(0.8)
    assert cells[0] + cells[2] == pytest.approx(0.76)
