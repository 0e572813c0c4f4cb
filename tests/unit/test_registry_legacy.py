"""Registries written by the earlier package layout load and score exactly as before."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from stream_ensemble.core.data import load_bundled
from stream_ensemble.core.members import default_pool
from stream_ensemble.core.registry import Registry, RegistrySecurity, legacy
from stream_ensemble.core.registry.migrate import migrate
from stream_ensemble.core.training import BuildConfig, train
from stream_ensemble.errors import IntegrityError
from stream_ensemble.serving.loading import load_serving_ensemble

_GLOBAL = re.compile(rb"c(stream_ensemble\.[\w.]+)\n(\w+)\n")


def as_old_layout(obj: object) -> bytes:
    """Pickle ``obj`` as the earlier layout did: every class under its old module and name.

    Protocol 2 writes each class as a ``GLOBAL`` opcode, ``c<module>\\n<name>\\n``, so the old
    paths can be written in by text substitution (the inverse of ``legacy.MOVED_MODULES``).
    """
    old_of = {new: old for old, news in legacy.MOVED_MODULES.items() for new in news}
    old_name = {(old, new): name for (old, name), new in legacy.RENAMED.items()}

    def back(m: re.Match[bytes]) -> bytes:
        module, name = m.group(1).decode(), m.group(2).decode()
        old = old_of.get(module)
        if old is None:
            return m.group(0)
        return b"c%s\n%s\n" % (old.encode(), old_name.get((old, name), name).encode())

    return _GLOBAL.sub(back, pickle.dumps(obj, protocol=2))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("legacy-registry")
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes", "decision_tree"}]
    for strategy in ("boosting", "caruana", "dynamic_regions"):
        train(load_bundled(), specs, Registry(root), ensemble_name=strategy,
              build_config=BuildConfig(strategy=strategy, random_state=0))
    return root


def test_every_moved_module_resolves() -> None:
    for old, news in legacy.MOVED_MODULES.items():
        for new in news:
            __import__(new)
        assert legacy.resolve(old, "NoSuchClass") == (old, "NoSuchClass")  # unknown names untouched
    for (old, name), new_name in legacy.RENAMED.items():
        module, resolved = legacy.resolve(old, name)
        assert resolved == new_name and hasattr(__import__(module, fromlist=[new_name]), new_name)


@pytest.mark.parametrize("strategy", ["boosting", "caruana", "dynamic_regions"])
def test_old_layout_ensemble_loads_and_scores_identically(registry: Path, strategy: str) -> None:
    reg = Registry(registry, RegistrySecurity())
    current = load_serving_ensemble(reg, strategy)
    version_dir = registry / "ensembles" / strategy / "v1"
    payload, _ = reg.load("ensembles", strategy)
    old_bytes = as_old_layout(payload)
    assert b"stream_ensemble.core.strategies\n" in old_bytes  # really written with the old paths
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old_bytes)  # a plain unpickler cannot read it any more
    # Write it back the way a registry of that time held it: ensemble.pkl, a manifest without a format.
    manifest_path = version_dir / "manifest.json"
    version_dir.chmod(0o755)
    for f in version_dir.iterdir():
        f.chmod(0o644)
    (version_dir / "ensemble.skops").unlink()
    (version_dir / "ensemble.pkl").write_bytes(old_bytes)
    manifest = json.loads(manifest_path.read_text())
    manifest.pop("format")
    manifest.update(artifact="ensemble.pkl", sha256=hashlib.sha256(old_bytes).hexdigest())
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="pickle"):
        load_serving_ensemble(reg, strategy)  # pickles are refused unless trusted
    trusting = Registry(registry, RegistrySecurity(trust_pickle=True))
    X = current.encoder.transform_columns(load_bundled().columns)[:100]
    old = load_serving_ensemble(trusting, strategy)
    report = migrate(registry, RegistrySecurity())
    assert f"ensembles/{strategy}/v1" in [m["artifact"] for m in report.migrated] and not report.failed
    for loaded in (old, load_serving_ensemble(reg, strategy)):  # the pickle, then its migrated skops
        for healthy in (np.ones(len(current.pool), bool), np.array([True, False, True])):
            a = current.score(X, healthy, "full")
            b = loaded.score(X, healthy, "full")
            np.testing.assert_array_equal(a.proba, b.proba)
            np.testing.assert_array_equal(a.prediction_set, b.prediction_set)
            assert a.explanations == b.explanations
    assert isinstance(legacy.load(io.BytesIO(old_bytes)), dict)
