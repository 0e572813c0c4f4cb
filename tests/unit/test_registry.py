from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from stream_ensemble.core.registry import Registry, RegistrySecurity
from stream_ensemble.errors import IntegrityError, ModelPoolError


def test_versions_are_immutable_and_increment(tmp_path: Path) -> None:
    reg = Registry(tmp_path, RegistrySecurity())
    a = reg.save("models", "logreg", LogisticRegression(C=1.0), {"family": "linear"})
    b = reg.save("models", "logreg", LogisticRegression(C=2.0), {"family": "linear"})
    assert (a.version, b.version) == (1, 2)
    assert reg.versions("models", "logreg") == [1, 2]
    est, manifest = reg.load("models", "logreg", 1)
    assert est.C == 1.0 and manifest["version"] == 1 and len(manifest["sha256"]) == 64
    assert reg.load("models", "logreg")[0].C == 2.0  # latest by default
    assert not (tmp_path / "models/logreg/v1/model.skops").stat().st_mode & 0o222  # read-only


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path, RegistrySecurity())
    reg.save("models", "m", {"w": [1, 2, 3]}, {})
    path = tmp_path / "models/m/v1/model.skops"
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match="sha256"):
        reg.load("models", "m")


def test_missing_artifacts_have_clear_errors(tmp_path: Path) -> None:
    reg = Registry(tmp_path, RegistrySecurity())
    with pytest.raises(ModelPoolError, match="run `stream-ensemble train`"):
        reg.load("ensembles", "default")
    reg.save("models", "m", 1, {})
    with pytest.raises(ModelPoolError, match="no version v9"):
        reg.load("models", "m", 9)
    with pytest.raises(ModelPoolError, match="invalid artifact name"):
        reg.save("models", "../evil", 1, {})
