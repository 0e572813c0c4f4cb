"""Rewriting a registry written with pickles in the formats that cannot run code.

``stream-ensemble registry migrate`` calls :func:`migrate`. Every version whose artifact is a
pickle is loaded (the one time a pickle is trusted: the operator says the registry is theirs
by running the migration) and written again in its safe format under the same version number,
so ensemble manifests, ``se:deploy`` pointers and events naming ``name@vN`` stay valid. With a
key configured, every version is (re)signed, safe ones included. A rewritten model is loaded
back through the safe path and must predict exactly what the pickle predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_ensemble.core.registry.signing import RegistrySecurity
from stream_ensemble.core.registry.store import Registry
from stream_ensemble.errors import ModelPoolError, StreamEnsembleError

KINDS = ("models", "ensembles")


@dataclass
class MigrationReport:
    """What :func:`migrate` did, one entry per artifact version.

    Attributes
    ----------
    migrated : list of dict
        ``artifact`` (``kind/name/vN``), ``from`` and ``to`` formats, ``signed``, ``backup``.
    unchanged : list of str
        Versions already safe (and signed, when a key is set).
    failed : list of dict
        ``artifact`` and ``reason``: versions left as they were.
    """

    migrated: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``--json``)."""
        return {"migrated": self.migrated, "unchanged": self.unchanged, "failed": self.failed,
                "n_migrated": len(self.migrated), "n_unchanged": len(self.unchanged), "n_failed": len(self.failed)}


def migrate(root: Any, security: RegistrySecurity | None = None, *, dry_run: bool = False) -> MigrationReport:
    """Rewrite every pickle (and, with a key, every unsigned version) of the registry at ``root``.

    Parameters
    ----------
    root : str or Path
    security : RegistrySecurity, optional
        Its key signs the rewritten versions (default: from the environment).
    dry_run : bool
        Report what would change; write nothing.

    Returns
    -------
    MigrationReport
    """
    security = RegistrySecurity.from_env() if security is None else security
    reader = Registry(root, RegistrySecurity(key=None, trust_pickle=True))
    writer = Registry(root, RegistrySecurity(key=security.key, trust_pickle=False))
    report = MigrationReport()
    for kind in KINDS:
        for name in reader.names(kind):
            for version in reader.versions(kind, name):
                what = f"{kind}/{name}/v{version}"
                manifest = reader.manifest(kind, name, version)
                fmt = str(manifest.get("format", "pickle"))
                resign = security.key is not None and manifest.get("key_id") != security.key_id
                if fmt != "pickle" and not resign:
                    report.unchanged.append(what)
                    continue
                try:
                    obj, _ = reader.load(kind, name, version)
                    entry = {"artifact": what, "from": fmt, "to": "(dry run)", "signed": security.key is not None,
                             "backup": None}
                    if not dry_run:
                        entry.update(_rewrite(writer, kind, name, version, obj, what))
                    report.migrated.append(entry)
                except StreamEnsembleError as exc:
                    report.failed.append({"artifact": what, "reason": str(exc)})
    return report


def _rewrite(writer: Registry, kind: str, name: str, version: int, obj: Any, what: str) -> dict[str, Any]:
    """Rewrite one version, load it back the safe way; put the old one back if that fails."""
    backup = writer.rewrite(kind, name, version, obj)
    try:
        again, manifest = writer.load(kind, name, version)
        _same_predictions(obj, again, what)
    except StreamEnsembleError:
        writer.restore(kind, name, version, backup)
        raise
    return {"to": str(manifest["format"]), "backup": str(backup)}


def _same_predictions(before: Any, after: Any, what: str) -> None:
    """A rewritten model must predict exactly what the pickle did (on 64 seeded rows)."""
    n = getattr(before, "n_features_in_", None)
    if not hasattr(before, "predict_proba") or not isinstance(n, int):
        return
    X = np.random.default_rng(0).normal(size=(64, n))
    if not np.array_equal(np.asarray(before.predict_proba(X)), np.asarray(after.predict_proba(X))):
        raise ModelPoolError(f"{what}: the rewritten model predicts differently from the pickle; kept as a pickle")
