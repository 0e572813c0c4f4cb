"""serve start-up: a registry, ensemble or version that does not exist, or a corrupt manifest,
is one line naming it and exit 2, before any server is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stream_ensemble.cli import main
from stream_ensemble.core.registry import Registry
from stream_ensemble.errors import ModelPoolError

# Unreachable servers: a start-up check that reached them would hang or fail otherwise.
SERVE = ["serve", "--bootstrap", "127.0.0.1:1", "--redis-url", "redis://127.0.0.1:1/0"]


def _registry(tmp_path: Path, manifest: bytes) -> Path:
    d = tmp_path / "reg" / "ensembles" / "default" / "v1"
    d.mkdir(parents=True)
    (d / "manifest.json").write_bytes(manifest)
    return tmp_path / "reg"


def _serve(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, [*SERVE, *args])
    # The output less the start-up "configuration" INFO line: the error and nothing else.
    assert "Traceback" not in result.output
    return result.exit_code, [line for line in result.output.splitlines() if line.strip() and " INFO " not in line]


def test_missing_registry_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    code, lines = _serve("--registry", str(tmp_path / "nope"))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: registry directory") and "nope" in lines[0]


def test_missing_ensemble_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, lines = _serve("--registry", str(tmp_path / "empty"), "--ensemble", "ghost")
    assert code == 2 and len(lines) == 1 and "no ensemble named 'ghost'" in lines[0]


def test_missing_version_exits_2_with_one_line(tmp_path: Path) -> None:
    reg = _registry(tmp_path, b'{"id": "default", "version": 1}')
    code, lines = _serve("--registry", str(reg), "--ensemble-version", "7")
    assert code == 2 and len(lines) == 1 and "no version v7" in lines[0] and "[1]" in lines[0]


@pytest.mark.parametrize("content", [b'{"id": "default", "vers', b"[1, 2]", b""])
def test_corrupt_manifest_names_the_file(tmp_path: Path, content: bytes) -> None:
    reg = _registry(tmp_path, content)
    path = reg / "ensembles" / "default" / "v1" / "manifest.json"
    with pytest.raises(ModelPoolError, match="corrupt") as e:
        Registry(reg).manifest("ensembles", "default")
    assert str(path) in str(e.value)
    code, lines = _serve("--registry", str(reg))
    assert code == 2 and len(lines) == 1 and str(path) in lines[0] and "corrupt" in lines[0]
