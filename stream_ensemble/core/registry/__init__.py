"""Registry: immutable, versioned, hash-checked artifacts on disk (models and ensembles).

Owns the on-disk layout and its guarantees (``store``: atomic version claims, read-only files,
sha256 checked on every load) and reading artifacts written by earlier package layouts
(``legacy``). A new artifact format or an integrity check goes here. May import the standard
library, orjson and errors only: it stores objects, it does not know what they are.
"""

from stream_ensemble.core.registry.store import ArtifactRef, Registry, sha256_file

__all__ = ["ArtifactRef", "Registry", "sha256_file"]
