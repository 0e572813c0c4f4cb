"""A tampered artifact is refused and its payload never runs, with and without a signing key.

The attacker can write the registry (not the key): they replace an artifact with a
code-executing payload and rewrite its manifest (sha256, format) to match. The payload's side
effect is a file it would create; every test checks that the file does not exist.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream_ensemble.core.data import load_bundled
from stream_ensemble.core.members import default_pool
from stream_ensemble.core.registry import Registry, RegistrySecurity
from stream_ensemble.core.registry.migrate import migrate
from stream_ensemble.core.training import BuildConfig, train
from stream_ensemble.errors import IntegrityError
from stream_ensemble.serving.loading import load_serving_ensemble

KEY = b"registry key held by the operator, never in the registry"


class _Payload:
    """Unpickling this runs ``touch <marker>``: what an attacker's model.pkl does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


class _SetstatePayload:
    """A class whose ``__setstate__`` has a side effect: skops must refuse to build it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def _train(root: Path, security: RegistrySecurity) -> Path:
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes"}]
    train(load_bundled(), specs, Registry(root, security), build_config=BuildConfig(strategy="soft_voting_all"))
    return root


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("plain"), RegistrySecurity())


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("signed"), RegistrySecurity(key=KEY))


def _copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


def _replace(version_dir: Path, filename: str, payload: bytes, **manifest_changes: Any) -> None:
    """The attacker's edit: new artifact bytes and a manifest rewritten to match them."""
    version_dir.chmod(0o755)
    for f in version_dir.iterdir():
        f.chmod(0o644)
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    (version_dir / str(manifest["artifact"])).unlink()
    (version_dir / filename).write_bytes(payload)
    manifest.update(artifact=filename, sha256=hashlib.sha256(payload).hexdigest(), **manifest_changes)
    path.write_text(json.dumps(manifest))


def _pickle_attack(root: Path, marker: Path) -> None:
    _replace(root / "models" / "logreg" / "v1", "model.pkl", pickle.dumps(_Payload(marker)), format="pickle")


def test_the_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    # The control: without the registry's refusal, this payload does execute.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_pickle_payload_with_rewritten_manifest_is_refused(plain: Path, tmp_path: Path) -> None:
    root, marker = _copy(plain, tmp_path / "reg"), tmp_path / "ran"
    _pickle_attack(root, marker)
    reg = Registry(root, RegistrySecurity())
    with pytest.raises(IntegrityError, match=r"refusing models/logreg/v1: it is a pickle.*registry migrate"):
        reg.load("models", "logreg")
    with pytest.raises(IntegrityError, match="pickle"):
        load_serving_ensemble(reg, "default")  # what `serve` and hot deploy call
    assert not marker.exists()


def test_manifest_without_a_format_is_a_pickle_and_refused(plain: Path, tmp_path: Path) -> None:
    # Registries written before the formats have no "format": dropping it must not help the attacker.
    root, marker = _copy(plain, tmp_path / "reg"), tmp_path / "ran"
    _pickle_attack(root, marker)
    path = root / "models" / "logreg" / "v1" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["format"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="pickle"):
        Registry(root, RegistrySecurity()).load("models", "logreg")
    assert not marker.exists()


def test_skops_file_naming_an_untrusted_type_is_refused(plain: Path, tmp_path: Path) -> None:
    import skops.io as sio

    root, marker = _copy(plain, tmp_path / "reg"), tmp_path / "ran"
    data = sio.dumps(_SetstatePayload(marker))
    assert not marker.exists()
    _replace(root / "models" / "logreg" / "v1", "model.skops", data, format="skops")
    with pytest.raises(IntegrityError, match=r"refusing models/logreg/v1: .*outside the trusted list.*_SetstatePayload"):
        Registry(root, RegistrySecurity()).load("models", "logreg")
    assert not marker.exists()
    # os.system as a stored function (e.g. a FunctionTransformer's func) is refused the same way.
    from sklearn.preprocessing import FunctionTransformer

    _replace(root / "models" / "logreg" / "v1", "model.skops", sio.dumps(FunctionTransformer(os.system)))
    with pytest.raises(IntegrityError, match="outside the trusted list.*system"):
        Registry(root, RegistrySecurity()).load("models", "logreg")


def test_manifest_pointing_outside_its_directory_is_refused(plain: Path, tmp_path: Path) -> None:
    root = _copy(plain, tmp_path / "reg")
    path = root / "models" / "logreg" / "v1" / "manifest.json"
    path.chmod(0o644)
    manifest = json.loads(path.read_text())
    manifest["artifact"] = "../../naive_bayes/v1/model.skops"
    path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="names no artifact file in its directory"):
        Registry(root, RegistrySecurity()).load("models", "logreg")


def test_with_a_key_the_rewritten_manifest_fails_its_signature(signed: Path, tmp_path: Path) -> None:
    root, marker = _copy(signed, tmp_path / "reg"), tmp_path / "ran"
    reg = Registry(root, RegistrySecurity(key=KEY))
    assert load_serving_ensemble(reg, "default").pool.names == ["logreg", "naive_bayes"]  # signed: loads
    _pickle_attack(root, marker)
    # Even a process that trusts pickles refuses it: the signature is checked before anything is read.
    for security in (RegistrySecurity(key=KEY), RegistrySecurity(key=KEY, trust_pickle=True)):
        with pytest.raises(IntegrityError, match=r"refusing models/logreg/v1: signature does not match"):
            load_serving_ensemble(Registry(root, security), "default")
    assert not marker.exists()


def test_with_a_key_unsigned_and_other_key_artifacts_are_refused(plain: Path, signed: Path, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match=r"refusing ensembles/default/v1: unsigned, and a registry key is set"):
        Registry(plain, RegistrySecurity(key=KEY)).load("ensembles", "default")
    with pytest.raises(IntegrityError, match="signature does not match"):
        Registry(signed, RegistrySecurity(key=b"another key")).load("ensembles", "default")
    # Copying a signed manifest's signature onto a changed manifest does not help either.
    root = _copy(signed, tmp_path / "reg")
    path = root / "models" / "logreg" / "v1" / "manifest.json"
    path.chmod(0o644)
    manifest = json.loads(path.read_text())
    manifest["cost_ms_per_1k"] = 0.0  # a cheaper-looking member, same bytes
    path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="signature does not match"):
        Registry(root, RegistrySecurity(key=KEY)).load("models", "logreg")


def test_migrate_signs_a_plain_registry_and_it_then_loads_with_the_key(plain: Path, tmp_path: Path) -> None:
    root = _copy(plain, tmp_path / "reg")
    report = migrate(root, RegistrySecurity(key=KEY))
    assert not report.failed and len(report.migrated) == 3  # 2 models + 1 ensemble, all re-signed
    assert load_serving_ensemble(Registry(root, RegistrySecurity(key=KEY)), "default").version == 1


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SE_REGISTRY_KEY", "SE_TRUST_PICKLE"))}
    return subprocess.run([sys.executable, "-m", "stream_ensemble", *args], capture_output=True, text=True,
                          timeout=120, env={**base, **env})


def test_cli_refuses_with_one_line_and_the_payload_does_not_run(plain: Path, signed: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name, src, env in (("plain", plain, {}), ("signed", signed, {"SE_REGISTRY_KEY": KEY.decode()})):
        root = _copy(src, tmp_path / name)
        _pickle_attack(root, marker)
        out = _cli("registry", "verify", "--registry", str(root), env=env)
        assert out.returncode == 1, out.stderr
        refused = [line for line in out.stdout.splitlines() if line.startswith("REFUSED")]
        reason = "it is a pickle" if name == "plain" else "signature does not match"
        assert len(refused) == 1 and "models/logreg/v1" in refused[0] and reason in refused[0], out.stdout
        assert not marker.exists()
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    ok = _cli("registry", "verify", "--registry", str(signed), "--json", env={"SE_REGISTRY_KEY_FILE": str(key_file)})
    assert ok.returncode == 0 and json.loads(ok.stdout)["n_ok"] == 3, ok.stdout + ok.stderr
    both = _cli("registry", "verify", "--registry", str(signed), env={"SE_REGISTRY_KEY_FILE": str(key_file),
                                                                         "SE_REGISTRY_KEY": "x"})
    assert both.returncode == 2 and both.stderr.strip().count("\n") == 0 and "not both" in both.stderr


def _numpy_load_skops(d: Path, marker: Path) -> Path:
    """A skops file asking skops to call ``numpy.load(evil.npy, None, True)``: an unpickling .npy.

    skops builds a trusted name by calling it with the file's arguments, so trusting "anything
    under numpy" would run this payload.
    """
    import skops.io as sio

    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    np.save(d / "evil.npy", arr, allow_pickle=True)

    def leaf(value: Any, i: int) -> dict[str, Any]:
        return {"__class__": type(value).__name__, "__module__": "builtins", "__loader__": "JsonNode",
                "content": json.dumps(value), "is_json": True, "__id__": i}

    version = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps([1]))).read("schema.json"))
    schema = {"__class__": "load", "__module__": "numpy", "__loader__": "ConstructorFromReduceNode", "__id__": 1,
              "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "__id__": 2,
                          "content": [leaf(str(d / "evil.npy"), 3), leaf(None, 4), leaf(True, 5)]},
              "protocol": version["protocol"], "_skops_version": version["_skops_version"]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps(schema))
    path = d / "model.skops"
    path.write_bytes(buf.getvalue())
    return path


def test_skops_file_calling_numpy_load_is_refused_by_models_add_and_registry(plain: Path, tmp_path: Path) -> None:
    from stream_ensemble.core.members.user import load_model
    from stream_ensemble.errors import ConfigError

    marker = tmp_path / "ran"
    evil = _numpy_load_skops(tmp_path, marker)
    with pytest.raises(ConfigError, match=r"refusing model.skops: .*numpy.load.*\(not loaded\)"):
        load_model(evil, "skops")  # `models add --file model.skops`
    root = _copy(plain, tmp_path / "reg")
    _replace(root / "models" / "logreg" / "v1", "model.skops", evil.read_bytes(), format="skops")
    with pytest.raises(IntegrityError, match="outside the trusted list.*numpy.load"):
        Registry(root, RegistrySecurity()).load("models", "logreg")
    assert not marker.exists()


def test_a_member_built_once_is_reused_but_tampering_afterwards_is_still_refused(plain: Path, tmp_path: Path) -> None:
    root, marker = _copy(plain, tmp_path / "reg"), tmp_path / "ran"
    reg = Registry(root, RegistrySecurity())
    first, _ = reg.load("models", "logreg")
    assert reg.load("models", "logreg")[0] is first  # same verified bytes: not rebuilt (hot deploy)
    _pickle_attack(root, marker)
    with pytest.raises(IntegrityError, match="it is a pickle"):
        reg.load("models", "logreg")  # every load re-verifies before the memo is consulted
    trusting = Registry(root, RegistrySecurity(trust_pickle=True))
    assert trusting.load("models", "logreg")[0] == 0  # os.system's exit status: the payload ran...
    assert marker.exists()  # ... only in a process that trusts pickles
    marker.unlink()
    with pytest.raises(IntegrityError, match="it is a pickle"):
        reg.load("models", "logreg")  # and pickles are never memoised for the others
    assert not marker.exists()
