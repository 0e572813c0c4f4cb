"""The on-disk model registry: immutable, versioned, hash-checked artifacts.

Layout (one directory per artifact version; nothing is ever overwritten)::

    <root>/models/<model_id>/v<N>/model.pkl        pickled fitted estimator
    <root>/models/<model_id>/v<N>/manifest.json    id, version, family, features, data
                                                   fingerprint, metrics, cost, sha256
    <root>/ensembles/<name>/v<N>/ensemble.pkl      encoder + strategy + calibrator + conformal
    <root>/ensembles/<name>/v<N>/manifest.json     members (id@version), strategy, metrics, sha256

A version is written to a temporary directory and renamed into place, so readers never see
a half-written artifact; files are then made read-only. Loading recomputes the sha256 of the
artifact and refuses it (:class:`IntegrityError`) when it differs from the manifest.
Pickles are only ever loaded after that check; the registry is trusted storage.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream_ensemble.core.registry.legacy import load as unpickle
from stream_ensemble.errors import IntegrityError, ModelPoolError

_VERSION = re.compile(r"^v(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Points at one artifact version, e.g. ``models/knn/v3``."""

    kind: str
    name: str
    version: int

    @property
    def tag(self) -> str:
        """``name@vN`` -- how members and ensembles are named in events and logs."""
        return f"{self.name}@v{self.version}"


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Registry:
    """Versioned artifact store under ``root``.

    Parameters
    ----------
    root : str or Path
        Registry directory (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ----------------------------------------------------------------- write
    def save(self, kind: str, name: str, obj: Any, manifest: dict[str, Any]) -> ArtifactRef:
        """Store ``obj`` as the next version of ``kind/name``.

        Parameters
        ----------
        kind : {"models", "ensembles"}
        name : str
            Artifact id (letters, digits, ``_ . -``).
        obj : object
            Picklable payload.
        manifest : dict
            JSON-ready metadata; ``id``, ``version``, ``sha256``, ``created_at`` and
            ``artifact`` are added.

        Returns
        -------
        ArtifactRef
        """
        if not _NAME.match(name):
            raise ModelPoolError(f"invalid artifact name {name!r}")
        base = self.root / kind / name
        base.mkdir(parents=True, exist_ok=True)
        filename = "model.pkl" if kind == "models" else "ensemble.pkl"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        payload = tmp / filename
        with payload.open("wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        # Claim the next version by atomic rename; retry if a concurrent writer won it.
        for _ in range(100):
            version = self._latest_version(base) + 1
            full = {
                **manifest,
                "id": name,
                "version": version,
                "artifact": filename,
                "sha256": sha256_file(payload),
                "created_at": time.time(),
            }
            (tmp / "manifest.json").write_bytes(orjson.dumps(full, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
            try:
                os.rename(tmp, base / f"v{version}")
            except OSError:
                continue
            for f in (base / f"v{version}").iterdir():
                f.chmod(0o444)
            return ArtifactRef(kind, name, version)
        raise ModelPoolError(f"could not allocate a version for {kind}/{name}")

    # ------------------------------------------------------------------ read
    def manifest(self, kind: str, name: str, version: int | None = None) -> dict[str, Any]:
        """The manifest of ``kind/name`` at ``version`` (default: latest).

        Raises
        ------
        ModelPoolError
            No such artifact.
        """
        path = self._dir(kind, name, version) / "manifest.json"
        return dict(orjson.loads(path.read_bytes()))

    def load(self, kind: str, name: str, version: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Load an artifact after verifying its sha256.

        Returns
        -------
        obj : object
        manifest : dict

        Raises
        ------
        IntegrityError
            The artifact's bytes do not match the manifest's sha256.
        ModelPoolError
            No such artifact.
        """
        d = self._dir(kind, name, version)
        manifest = dict(orjson.loads((d / "manifest.json").read_bytes()))
        payload = d / str(manifest["artifact"])
        actual = sha256_file(payload)
        if actual != manifest["sha256"]:
            raise IntegrityError(
                f"refusing {kind}/{name}/v{manifest['version']}: sha256 {actual[:12]} does not "
                f"match manifest {str(manifest['sha256'])[:12]} (artifact modified or corrupt)"
            )
        with payload.open("rb") as fh:
            obj = unpickle(fh)  # verified against the manifest above
        return obj, manifest

    def versions(self, kind: str, name: str) -> list[int]:
        """All versions of ``kind/name``, ascending."""
        base = self.root / kind / name
        if not base.is_dir():
            return []
        return sorted(int(m.group(1)) for p in base.iterdir() if (m := _VERSION.match(p.name)))

    def names(self, kind: str) -> list[str]:
        """Artifact names of a kind."""
        base = self.root / kind
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def _latest_version(self, base: Path) -> int:
        found = [int(m.group(1)) for p in base.iterdir() if (m := _VERSION.match(p.name))]
        return max(found, default=0)

    def _dir(self, kind: str, name: str, version: int | None) -> Path:
        versions = self.versions(kind, name)
        if not versions:
            raise ModelPoolError(f"no {kind[:-1]} named {name!r} in registry {self.root} (run `stream-ensemble train`)")
        v = versions[-1] if version is None else version
        if v not in versions:
            raise ModelPoolError(f"{kind}/{name} has no version v{v}; versions: {versions}")
        return self.root / kind / name / f"v{v}"
