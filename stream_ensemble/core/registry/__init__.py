"""Registry: immutable, versioned, hash-checked artifacts on disk (models and ensembles).

Owns the on-disk layout and its guarantees (``store``: atomic version claims, read-only files,
sha256 checked on every load) and reading artifacts written by earlier package layouts
(``legacy``), the formats that cannot run code and the trusted-type list (``formats``),
HMAC signatures with a key outside the registry (``signing``) and rewriting a pickle registry
in the safe formats (``migrate``). A new artifact format or an integrity check goes here. May
import the standard library, orjson, numpy, errors and, lazily, the libraries whose files it
reads (skops, xgboost, lightgbm); it names the core's classes it trusts, it never imports them.
"""

from stream_ensemble.core.registry.formats import FORMATS, TRUSTED_TYPES, choose_format, untrusted_types
from stream_ensemble.core.registry.signing import RegistrySecurity
from stream_ensemble.core.registry.store import REGISTRY_FIELDS, ArtifactRef, Registry, sha256_file

__all__ = ["FORMATS", "REGISTRY_FIELDS", "TRUSTED_TYPES", "ArtifactRef", "Registry", "RegistrySecurity",
           "choose_format", "sha256_file", "untrusted_types"]
