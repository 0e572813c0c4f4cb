"""Loaders of the shared real datasets, and the CLI's datasets-folder errors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stream_ensemble.bench import datasets
from stream_ensemble.bench.data_files import default_data_dir
from stream_ensemble.cli.bench import bench
from stream_ensemble.errors import ConfigError

# The real datasets: $SE_DATA_DIR, else the user cache (`stream-ensemble datasets fetch`).
SHARED = default_data_dir()
needs_shared = pytest.mark.skipif(
    not (SHARED / "sonar.csv").is_file(),
    reason=f"datasets folder {SHARED} is absent (set SE_DATA_DIR; real-data loaders not checked)",
)


@lru_cache(maxsize=None)
def _shared(name: str) -> datasets.Dataset:
    # adult takes seconds to parse; every test reads the same immutable files.
    return datasets.load_shared(name, SHARED)


# name -> (rows, numeric features, categorical features, positive label, positives)
EXPECTED = {
    "adult": (48842, 6, 8, ">50K", 11687),
    "mammography": (11183, 6, 0, "1", 260),
    "phoneme": (5404, 5, 0, "1", 1586),
    "spambase": (4601, 57, 0, "1", 1813),
    "german": (1000, 7, 13, "2", 300),
    "pima": (768, 8, 0, "1", 268),
    "banknote": (1372, 4, 0, "1", 610),
    "ionosphere": (351, 34, 0, "b", 126),
    "sonar": (208, 60, 0, "M", 111),
    "breast-cancer-wisconsin": (699, 9, 0, "4", 241),
}


@needs_shared
@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_shared_file_parses(name: str) -> None:
    rows, n_num, n_cat, positive, n_pos = EXPECTED[name]
    data = _shared(name)
    assert data.n_rows == rows
    assert (len(data.numeric), len(data.categorical)) == (n_num, n_cat)
    assert data.classes[1] == positive
    assert int(data.y.sum()) == n_pos
    assert set(np.unique(data.y)) == {0, 1}


@needs_shared
def test_quirks_are_handled() -> None:
    adult = _shared("adult")
    # Test-file labels end with a dot; both files must map onto the same two classes.
    assert adult.classes == ["<=50K", ">50K"]
    assert adult.columns["workclass"][0] == "State-gov"  # ", " separator stripped
    assert sum(v is None for v in adult.columns["workclass"]) > 0  # "?" is missing
    bcw = _shared("breast-cancer-wisconsin")
    # The shipped file has no id column (despite the README): nothing is dropped; "?" -> NaN.
    assert np.isnan(bcw.columns["bare_nuclei"]).sum() == 16
    assert bcw.columns["clump_thickness"][:3].tolist() == [5.0, 5.0, 3.0]
    spam = _shared("spambase")
    assert spam.columns["x0"][0] == 0.0  # the "1..58" header row is not data
    pima = _shared("pima")
    assert np.isnan(pima.columns["insulin"]).sum() == 374  # zero-coded missing values
    assert np.isnan(pima.columns["pregnancies"]).sum() == 0  # a real zero stays a zero


@needs_shared
def test_max_rows_subsample_is_stratified_and_seeded() -> None:
    a = datasets.load_shared("mammography", SHARED, max_rows=2000, random_state=3)
    b = datasets.load_shared("mammography", SHARED, max_rows=2000, random_state=3)
    assert abs(a.n_rows - 2000) <= 2
    assert abs(a.y.mean() - 260 / 11183) < 0.002
    assert np.array_equal(a.columns["x0"], b.columns["x0"])


def test_available_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert datasets.available(tmp_path) == []
    (tmp_path / "sonar.csv").write_text("0.1,0.2,R\n0.3,0.4,M\n")
    assert datasets.available(tmp_path) == ["sonar"]
    # no folder given: $SE_DATA_DIR, else the user cache
    monkeypatch.setenv("SE_DATA_DIR", str(tmp_path / "unset"))
    with pytest.raises(ConfigError, match="unset.*datasets fetch"):
        datasets.check_data_dir(None)
    monkeypatch.setenv("SE_DATA_DIR", str(tmp_path))
    assert datasets.check_data_dir(None) == tmp_path
    monkeypatch.delenv("SE_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "stream-ensemble" / "datasets"
    with pytest.raises(ConfigError, match="not found"):
        datasets.check_data_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="unknown dataset"):
        datasets.load_shared("iris", tmp_path)
    (tmp_path / "pima-indians-diabetes.csv").write_text("1,2,0\n3,4,1\n")
    with pytest.raises(ConfigError, match="expected 9 columns, found 3"):
        datasets.load_shared("pima", tmp_path)  # wrong width is reported, not mis-parsed


def test_breast_cancer_id_column_dropped_when_present(tmp_path: Path) -> None:
    (tmp_path / "breast-cancer-wisconsin.csv").write_text(
        "1000025,5,1,1,1,2,1,3,1,1,2\n1002945,5,4,4,5,7,?,3,2,1,4\n")
    data = datasets.load_shared("breast-cancer-wisconsin", tmp_path)
    assert data.columns["clump_thickness"].tolist() == [5.0, 5.0]
    assert np.isnan(data.columns["bare_nuclei"][1]) and data.y.tolist() == [0, 1]


def test_loader_on_a_tiny_adult_like_pair(tmp_path: Path) -> None:
    row = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, {}\n"
    (tmp_path / "adult-train.csv").write_text(row.format("<=50K") + row.format(">50K").replace("State-gov", "?"))
    (tmp_path / "adult-test.csv").write_text("\n" + row.format(">50K."))
    data = datasets.load_shared("adult", tmp_path)
    assert data.y.tolist() == [0, 1, 1]
    assert data.columns["workclass"].tolist() == ["State-gov", None, "State-gov"]
    assert data.columns["age"].dtype == np.float64


@pytest.mark.parametrize("args", [
    ["--out", "r.json"],  # no --data-dir
    ["--data-dir", "does-not-exist", "--out", "r.json"],
    ["--data-dir", ".", "--out", "r.json"],  # a folder without any dataset file
])
def test_cli_data_dir_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_DATA_DIR", str(tmp_path / "no-datasets-here"))
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        res = runner.invoke(bench, ["accuracy", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    assert "Traceback" not in res.output


def test_cli_unknown_dataset_name(tmp_path: Path) -> None:
    (tmp_path / "sonar.csv").write_text("0.1,0.2,R\n")
    res = CliRunner().invoke(bench, ["accuracy", "--data-dir", str(tmp_path), "--out",
                                     str(tmp_path / "r.json"), "--datasets", "sonar,iris"])
    assert res.exit_code == 2 and "unknown dataset 'iris'" in res.output


def test_cli_help_documents_options() -> None:
    res = CliRunner().invoke(bench, ["accuracy", "--help"])
    assert res.exit_code == 0
    for opt in ("--data-dir", "--out", "--md", "--png", "--splits", "--datasets", "--max-rows", "--csv",
                "--label", "--positive", "--strategies"):
        assert opt in res.output


def test_fetch_keeps_only_verified_files_and_verify_reports(tmp_path: Path) -> None:
    from stream_ensemble.bench import data_files

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "sonar.csv").write_text("not the real sonar bytes\n")
    dest = tmp_path / "dest"
    states = data_files.fetch(mirror.as_uri(), dest)
    assert states["sonar.csv"] == "checksum mismatch" and not (dest / "sonar.csv").exists()
    assert states["german.csv"].startswith("failed")
    assert list(dest.iterdir()) == []  # no partial or unverified file left behind
    assert data_files.verify(dest)["sonar.csv"] == "missing"
    with pytest.raises(ConfigError, match="--from"):
        data_files.fetch("ftp://x", dest)


@needs_shared
def test_fetch_from_a_real_mirror_verifies_every_file(tmp_path: Path) -> None:
    from stream_ensemble.bench import data_files

    states = data_files.fetch(SHARED.resolve().as_uri(), tmp_path / "copy")
    assert set(states.values()) == {"fetched"}
    assert set(data_files.verify(tmp_path / "copy").values()) == {"ok"}
