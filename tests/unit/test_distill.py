"""Distillation: a servable one-member version close to its teacher, metrics in the manifest, CLI errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from stream_ensemble.cli import main
from stream_ensemble.core.data import load_bundled
from stream_ensemble.core.members.families import default_pool
from stream_ensemble.core.registry import Registry
from stream_ensemble.core.training import train
from stream_ensemble.core.training.builder import BuildConfig
from stream_ensemble.core.training.distill import fit_student, kept_share, soft_rows, teacher_oof
from stream_ensemble.core.training.distill_pipeline import distill
from stream_ensemble.core.training.pipeline import holdout_rows
from stream_ensemble.errors import ConfigError
from stream_ensemble.serving.loading import load_with_smoke_rows
from stream_ensemble.serving.versions import smoke_problem

MEMBERS = {"logreg", "naive_bayes", "decision_tree", "hist_gb"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distill") / "reg"
    specs = [s for s in default_pool(0) if s.model_id in MEMBERS]
    train(load_bundled(), specs, Registry(root), build_config=BuildConfig(strategy="soft_voting_all"))
    return root


def _served_proba(reg: Registry, version: int) -> np.ndarray:
    """Calibrated probabilities the worker would serve on the holdout rows, shape (n, 2)."""
    ens, _ = load_with_smoke_rows(reg, "default", version)
    X = ens.encoder.transform_records(load_bundled().records(holdout_rows(reg, "default", 1))).X
    return np.asarray(ens.score(X, np.ones(len(ens.pool.names), dtype=bool), explain="none").proba)


def test_distilled_version_is_servable_close_to_teacher_and_carries_metrics(trained: Path) -> None:
    reg = Registry(trained)
    result = distill(reg, "default", 1, load_bundled(), student="hist_gb")
    assert result.version == 2 and result.teacher == "default@v1"
    ens, rows = load_with_smoke_rows(reg, "default", 2)
    assert [m.name for m in ens.pool.members] == ["default-distilled-hist_gb"]
    assert rows and smoke_problem(ens, rows) is None  # what hot deploy checks before serving it
    teacher, student = _served_proba(reg, 1), _served_proba(reg, 2)
    assert np.allclose(student.sum(axis=1), 1.0)
    # Held-out rows neither model saw: the student follows the teacher.
    assert np.mean(np.abs(student[:, 1] - teacher[:, 1])) < 0.1
    assert np.mean(student.argmax(axis=1) == teacher.argmax(axis=1)) >= 0.9

    manifest = reg.manifest("ensembles", "default", 2)
    block = manifest["distillation"]
    assert block == result.summary
    for who in ("teacher", "best_single", "student"):
        assert 0 < block["test"][who]["log_loss"] < 1 and 0.5 < block["test"][who]["accuracy"] <= 1
        assert block["cost"][who]["ms_per_1k"] > 0 and block["cost"][who]["call_ms"] > 0
    assert block["test"]["best_single"]["member"] in MEMBERS
    assert block["test_rows"] == len(manifest["holdout_rows"]) == len(reg.manifest("ensembles", "default", 1)["holdout_rows"])
    t, b, s = (block["test"][k]["log_loss"] for k in ("teacher", "best_single", "student"))
    expected = kept_share(b, t, s)
    assert (math.isnan(expected) and block["kept_share"] is None) or block["kept_share"] == pytest.approx(expected)
    assert block["cost_ratio"] == pytest.approx(block["cost"]["student"]["ms_per_1k"] / block["cost"]["teacher"]["ms_per_1k"])
    member = reg.manifest("models", "default-distilled-hist_gb")
    assert member["distilled_from"] == "default@v1" and member["cost_ms_per_1k"] == block["cost"]["student"]["ms_per_1k"]


def test_distill_refuses_other_data(trained: Path) -> None:
    with pytest.raises(ConfigError, match="not what default@v1 was trained on"):
        distill(Registry(trained), "default", 1, load_bundled("wine"))


def test_soft_rows_weights_are_the_targets() -> None:
    X = np.array([[0.0], [1.0]])
    soft = np.array([[0.7, 0.3], [1.0, 0.0]])
    Xr, yr, wr = soft_rows(X, soft)
    assert yr.tolist() == [0, 1, 0] and wr.tolist() == [0.7, 0.3, 1.0] and Xr[:, 0].tolist() == [0.0, 0.0, 1.0]


def test_student_learns_soft_targets_not_labels() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 3))
    soft_pos = 1.0 / (1.0 + np.exp(-2.0 * X[:, 0]))  # a smooth teacher
    soft = np.column_stack([1.0 - soft_pos, soft_pos])
    Xc = rng.normal(size=(400, 3))
    yc = (rng.random(400) < 1.0 / (1.0 + np.exp(-2.0 * Xc[:, 0]))).astype(np.int64)
    st = fit_student("lightgbm", X, soft, Xc, yc)
    p = st.raw_proba(Xc)[:, 1]
    assert np.mean(np.abs(p - 1.0 / (1.0 + np.exp(-2.0 * Xc[:, 0])))) < 0.06
    with pytest.raises(ConfigError, match="unknown student"):
        fit_student("svm", X, soft, Xc, yc)
    with pytest.raises(ConfigError, match="sum to 1"):
        fit_student("lightgbm", X, soft * 2, Xc, yc)


def test_teacher_oof_refuses_missing_columns() -> None:
    class RunsAll:
        def required_members(self, healthy: np.ndarray) -> np.ndarray:
            return healthy

    with pytest.raises(ConfigError, match="missing"):
        teacher_oof(RunsAll(), None, np.full((3, 2, 2), np.nan), np.zeros((3, 1)))


def test_cli_distill_json_and_table(trained: Path) -> None:
    out = CliRunner().invoke(main, ["distill", "default@v1", "--registry", str(trained), "--json"])
    assert out.exit_code == 0, out.output
    doc = orjson.loads(out.stdout)
    assert doc["teacher"] == "default@v1" and doc["ensemble"].startswith("default@v")
    assert {"teacher", "best_single", "student"} <= set(doc["test"]) and "cost_ratio" in doc
    table = CliRunner().invoke(main, ["distill", "default@v1", "--registry", str(trained), "--student", "hist_gb"])
    assert table.exit_code == 0, table.output
    assert "kept share" in table.output and "student (hist_gb)" in table.output


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [("nosuch@v1", "no ensemble 'nosuch'"), ("default@v99", "has no version v99"), ("default", "expected NAME@vN")],
)
def test_cli_distill_bad_tag_is_one_line_exit_2(trained: Path, tag: str, fragment: str) -> None:
    out = CliRunner().invoke(main, ["distill", tag, "--registry", str(trained)])
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0]


def test_cli_distill_wrong_data_is_exit_2(trained: Path) -> None:
    out = CliRunner().invoke(main, ["distill", "default@v1", "--registry", str(trained), "--data", "wine"])
    assert out.exit_code == 2 and "not what default@v1 was trained on" in out.output
