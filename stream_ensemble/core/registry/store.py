"""The on-disk model registry: immutable, versioned, hash-checked artifacts.

Layout (one directory per artifact version; nothing is ever overwritten)::

    <root>/models/<model_id>/v<N>/model.skops      fitted estimator (or model.ubj / model.txt:
                                                   an XGBoost / LightGBM native model file)
    <root>/models/<model_id>/v<N>/manifest.json    id, version, format, family, features, data
                                                   fingerprint, metrics, cost, sha256, signature
    <root>/ensembles/<name>/v<N>/ensemble.skops    encoder + strategy + calibrator + conformal
    <root>/ensembles/<name>/v<N>/manifest.json     members (id@version), strategy, metrics, sha256

A version is written to a temporary directory and renamed into place, so readers never see
a half-written artifact; files are then made read-only. Loading checks, in order: the
manifest's HMAC signature when a key is configured (:mod:`.signing`), the artifact's sha256
against the manifest, then rebuilds it in its format (:mod:`.formats`), none of which runs
code named by the file; a pickle (registries written before the formats) only loads when
pickles are trusted explicitly. Any failure is one :class:`IntegrityError` line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream_ensemble.core.registry.formats import dump_artifact, load_artifact
from stream_ensemble.core.registry.signing import RegistrySecurity, sign, verify
from stream_ensemble.errors import IntegrityError, ModelPoolError

#: Manifest fields the registry writes (callers copying a manifest drop them).
REGISTRY_FIELDS = ("id", "version", "artifact", "format", "object", "sha256", "created_at", "signature", "key_id")
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
#: Built members kept per process, keyed by (version directory, sha256, signature, format).
MEMO_MEMBERS = 256
_MEMBERS: OrderedDict[tuple[str, str, str, str], Any] = OrderedDict()

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
    security : RegistrySecurity, optional
        Signing key and pickle trust; default :meth:`RegistrySecurity.from_env`
        (``SE_REGISTRY_KEY`` / ``SE_REGISTRY_KEY_FILE``, ``SE_TRUST_PICKLE``).
    """

    def __init__(self, root: str | Path, security: RegistrySecurity | None = None) -> None:
        self.root = Path(root)
        self.security = RegistrySecurity.from_env() if security is None else security

    # ----------------------------------------------------------------- write
    def save(self, kind: str, name: str, obj: Any, manifest: dict[str, Any], fmt: str | None = None) -> ArtifactRef:
        """Store ``obj`` as the next version of ``kind/name``.

        Parameters
        ----------
        kind : {"models", "ensembles"}
        name : str
            Artifact id (letters, digits, ``_ . -``).
        obj : object
            A fitted estimator or pipeline, an XGBoost model, a LightGBM booster, or ensemble
            state (see :mod:`.formats`).
        manifest : dict
            JSON-ready metadata; the fields of :data:`REGISTRY_FIELDS` are (re)written.
        fmt : {"skops", "xgboost", "lightgbm", "pickle"}, optional
            Default: the native format for boosters, skops otherwise. ``pickle`` only for
            test doubles that no safe format holds (loaded only with pickles trusted).

        Returns
        -------
        ArtifactRef

        Raises
        ------
        ModelPoolError
            Invalid name, or ``obj`` holds a type the safe formats do not trust.
        """
        if not _NAME.match(name):
            raise ModelPoolError(f"invalid artifact name {name!r}")
        base = self.root / kind / name
        base.mkdir(parents=True, exist_ok=True)
        manifest = {k: v for k, v in manifest.items() if k not in REGISTRY_FIELDS}  # a copied manifest's are stale
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            filename, fields = dump_artifact(obj, tmp, "model" if kind == "models" else "ensemble", fmt)
            digest = sha256_file(tmp / filename)
            # Claim the next version by atomic rename; retry if a concurrent writer won it.
            for _ in range(100):
                version = self._latest_version(base) + 1
                self._write_manifest(tmp, {**manifest, **fields, "id": name, "version": version,
                                           "artifact": filename, "sha256": digest, "created_at": time.time()})
                try:
                    os.rename(tmp, base / f"v{version}")
                except OSError:
                    continue
                for f in (base / f"v{version}").iterdir():
                    f.chmod(0o444)
                return ArtifactRef(kind, name, version)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        raise ModelPoolError(f"could not allocate a version for {kind}/{name}")

    def rewrite(self, kind: str, name: str, version: int, obj: Any, fmt: str | None = None) -> Path:
        """Replace version ``version`` of ``kind/name`` by ``obj`` in ``fmt``, same manifest otherwise.

        The one exception to immutability, for ``registry migrate``: the version number is
        kept (ensemble manifests and deploy pointers name it). The old directory is moved to
        ``<root>/.migrated/<kind>/<name>/v<N>-<time>`` and returned, then the new one is
        renamed into place (a reader sees the old or the new version, never a mix).
        """
        d = self._dir(kind, name, version)
        old = _read_manifest(d / "manifest.json")
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=d.parent))
        try:
            filename, fields = dump_artifact(obj, tmp, "model" if kind == "models" else "ensemble", fmt)
            kept = {k: v for k, v in old.items() if k not in REGISTRY_FIELDS}
            self._write_manifest(tmp, {**kept, **fields, "id": name, "version": version, "artifact": filename,
                                       "sha256": sha256_file(tmp / filename), "created_at": old.get("created_at"),
                                       "migrated_at": time.time()})
            for f in tmp.iterdir():
                f.chmod(0o444)
            backup = self.root / ".migrated" / kind / name / f"v{version}-{time.time_ns()}"
            backup.parent.mkdir(parents=True, exist_ok=True)
            os.rename(d, backup)
            os.rename(tmp, d)
            return backup
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def restore(self, kind: str, name: str, version: int, backup: Path) -> None:
        """Undo :meth:`rewrite`: the backup directory becomes version ``version`` again."""
        d = self.root / kind / name / f"v{version}"
        shutil.rmtree(d)
        os.rename(backup, d)

    def _write_manifest(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json``, signed when a key is configured (over what is read back)."""
        manifest = {k: v for k, v in manifest.items() if k not in ("signature", "key_id")}
        if self.security.key is not None:
            manifest["key_id"] = self.security.key_id
            # Sign the JSON round trip: what a reader will parse, numpy values already lists.
            manifest = dict(orjson.loads(orjson.dumps(manifest, option=_JSON)))
            manifest["signature"] = sign(manifest, self.security.key)
        (directory / "manifest.json").write_bytes(orjson.dumps(manifest, option=_JSON))

    # ------------------------------------------------------------------ read
    def manifest(self, kind: str, name: str, version: int | None = None) -> dict[str, Any]:
        """The manifest of ``kind/name`` at ``version`` (default: latest).

        Raises
        ------
        ModelPoolError
            No such artifact.
        """
        return _read_manifest(self._dir(kind, name, version) / "manifest.json")

    def load(self, kind: str, name: str, version: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Load an artifact after verifying its signature (when a key is set) and its sha256.

        Returns
        -------
        obj : object
            Read-only: a member already built in this process from the same verified
            bytes is returned again (the same object), not rebuilt.
        manifest : dict

        Raises
        ------
        IntegrityError
            Unsigned or mis-signed while a key is set; bytes that do not match the
            manifest's sha256; a pickle while pickles are not trusted; a skops file naming a
            type outside the trusted list.
        ModelPoolError
            No such artifact.
        """
        d = self._dir(kind, name, version)
        manifest = self.verified_manifest(kind, name, version)
        what = f"{kind}/{name}/v{manifest['version']}"
        fmt = str(manifest.get("format", "pickle"))  # manifests before formats: pickles
        # Members are memoised by what was just verified: a hot deploy of a new ensemble version
        # rebuilds only the members it does not share with the served one (pickles never are,
        # so a process that does not trust them refuses them every time).
        key = (str(d.resolve()), str(manifest["sha256"]), str(manifest.get("signature")), fmt)
        if kind == "models" and fmt != "pickle" and key in _MEMBERS:
            _MEMBERS.move_to_end(key)
            return _MEMBERS[key], manifest
        obj = load_artifact(d / str(manifest["artifact"]), fmt, manifest,
                            trust_pickle=self.security.trust_pickle, what=what)
        if kind == "models" and fmt != "pickle":
            _MEMBERS[key] = obj
            while len(_MEMBERS) > MEMO_MEMBERS:
                _MEMBERS.popitem(last=False)
        return obj, manifest

    def verified_manifest(self, kind: str, name: str, version: int | None = None) -> dict[str, Any]:
        """The manifest, after checking its signature (key set) and its artifact's sha256.

        Raises
        ------
        IntegrityError, ModelPoolError
            As :meth:`load` (everything but the format).
        """
        d = self._dir(kind, name, version)
        manifest = _read_manifest(d / "manifest.json")
        what = f"{kind}/{name}/{d.name}"
        if self.security.key is not None:
            verify(manifest, self.security.key, what)
        artifact = str(manifest.get("artifact", ""))
        if not artifact or "/" in artifact or artifact.startswith("."):
            raise IntegrityError(f"refusing {what}: manifest names no artifact file in its directory ({artifact!r})")
        actual = sha256_file(d / artifact)
        if actual != manifest.get("sha256"):
            raise IntegrityError(
                f"refusing {what}: sha256 {actual[:12]} does not "
                f"match manifest {str(manifest.get('sha256'))[:12]} (artifact modified or corrupt)"
            )
        return manifest

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


def _read_manifest(path: Path) -> dict[str, Any]:
    """A manifest as a dict; an unreadable or corrupt one is one error naming the file."""
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ModelPoolError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ModelPoolError(f"manifest {path} is corrupt (not valid JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise ModelPoolError(f"manifest {path} is corrupt (a JSON {type(doc).__name__}, not an object)")
    return doc
