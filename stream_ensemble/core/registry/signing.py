"""HMAC-SHA256 signatures of registry artifacts, with a key kept outside the registry.

A manifest names its artifact's sha256; the signature is the HMAC-SHA256 of the manifest
itself (every field but ``signature``, canonical JSON with sorted keys), so it covers the
artifact's bytes, its format, its version and every metric an operator reads. Whoever can
write the registry but does not hold the key can change neither.

The key is read once from the environment: ``SE_REGISTRY_KEY`` (the key itself) or
``SE_REGISTRY_KEY_FILE`` (a file holding it; one trailing newline is ignored). When a key is
set, every artifact loaded must carry a signature made with it; unsigned or mis-signed ones
are refused. ``SE_TRUST_PICKLE=1`` (or ``--trust-pickle``) lets pickle artifacts load.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream_ensemble.errors import ConfigError, IntegrityError

KEY_ENV, KEY_FILE_ENV, TRUST_PICKLE_ENV = "SE_REGISTRY_KEY", "SE_REGISTRY_KEY_FILE", "SE_TRUST_PICKLE"
_PREFIX = "hmac-sha256:"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class RegistrySecurity:
    """What a registry trusts when it loads.

    Attributes
    ----------
    key : bytes or None
        HMAC key. When set, artifacts are signed on write and must be signed with it on read.
    trust_pickle : bool
        Load ``pickle`` artifacts (they can run any code). Off by default.
    """

    key: bytes | None = None
    trust_pickle: bool = False

    def __repr__(self) -> str:  # never print the key
        return f"RegistrySecurity(key={'set' if self.key else None}, trust_pickle={self.trust_pickle})"

    @property
    def key_id(self) -> str | None:
        """First 12 hex digits of sha256(key): names the key in manifests without revealing it."""
        return hashlib.sha256(self.key).hexdigest()[:12] if self.key else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistrySecurity:
        """Read ``SE_REGISTRY_KEY`` / ``SE_REGISTRY_KEY_FILE`` and ``SE_TRUST_PICKLE``.

        Raises
        ------
        ConfigError
            Both key variables set, an empty key, an unreadable key file, or a
            ``SE_TRUST_PICKLE`` that is not a boolean.
        """
        env = os.environ if env is None else env
        raw, path = env.get(KEY_ENV, ""), env.get(KEY_FILE_ENV, "")
        if raw and path:
            raise ConfigError(f"set one of {KEY_ENV} and {KEY_FILE_ENV}, not both")
        key: bytes | None = None
        if raw:
            key = raw.encode()
        elif path:
            try:
                key = Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"{KEY_FILE_ENV}={path}: cannot read the registry key ({exc.strerror})") from None
            key = key[:-1] if key.endswith(b"\n") else key
            if not key:
                raise ConfigError(f"{KEY_FILE_ENV}={path}: the key file is empty")
        trust = env.get(TRUST_PICKLE_ENV, "").strip().lower()
        if trust not in _TRUE + _FALSE:
            raise ConfigError(f"{TRUST_PICKLE_ENV} must be 1/true/yes or 0/false/no, got {trust!r}")
        return cls(key, trust in _TRUE)


def _signed_bytes(manifest: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def sign(manifest: Mapping[str, Any], key: bytes) -> str:
    """``hmac-sha256:<hex>`` of the manifest without its ``signature`` field.

    Examples
    --------
    >>> sign({"b": 1, "a": [2]}, b"k") == sign({"a": [2], "b": 1, "signature": "x"}, b"k")
    True
    """
    return _PREFIX + hmac.new(key, _signed_bytes(manifest), hashlib.sha256).hexdigest()


def verify(manifest: Mapping[str, Any], key: bytes, what: str) -> None:
    """Refuse a manifest that is unsigned or not signed with ``key``.

    Raises
    ------
    IntegrityError
        One line naming the artifact and what is wrong.
    """
    found = manifest.get("signature")
    if not found:
        raise IntegrityError(f"refusing {what}: unsigned, and a registry key is set ({KEY_ENV}/{KEY_FILE_ENV}); "
                             "sign the registry with `stream-ensemble registry migrate` using that key")
    if not hmac.compare_digest(str(found), sign(manifest, key)):
        raise IntegrityError(f"refusing {what}: signature does not match (manifest or artifact modified, "
                             "or signed with another key)")
