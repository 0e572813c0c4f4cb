"""Where the benchmark datasets live, and getting them there with their checksums verified.

Resolution of the datasets folder: ``--data-dir``, else ``$SE_DATA_DIR``, else the user cache
(``$XDG_CACHE_HOME/stream-ensemble/datasets``, default ``~/.cache/stream-ensemble/datasets``).
``stream-ensemble datasets fetch --from URL`` copies the files from a mirror (``https://``,
``http://`` or ``file://``) into that folder and keeps only files whose sha256 matches
:data:`SHA256`, so a benchmark figure always comes from the exact bytes it was measured on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stream_ensemble.core.registry.store import sha256_file as sha256_of
from stream_ensemble.errors import ConfigError

#: sha256 of every dataset file the loaders in ``bench/datasets.py`` read.
SHA256 = {
    "adult-test.csv": "72567b94f5c1a6f8501377dd80f93892c3848ff071cf91ba47e00b0785a28074",
    "adult-train.csv": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "banknote_authentication.csv": "d0539aaed2139ba7a587b3e34fb345ce503ff7d5d33dbf9912d8e195ce425cb9",
    "breast-cancer-wisconsin.csv": "9c9dc50e62dbcece16e5707bdec7514f87230d0aa35798b9aaffbc77cf736f1f",
    "german.csv": "ec12a88b9fc14d74ba646ea0410cf7ff4533bec2eb61652f8ad76796bbfec017",
    "ionosphere.csv": "fd6dd7864b55d56dac0a1e6e24af9ccc35bf2555ac79af8ab9f3d1daa065ab83",
    "mammography.csv": "7d3dea3f075f30bbdbb8980e7725684059b4fe3d0f850fadd0f635f6993d8730",
    "phoneme.csv": "eacbb9f7a2b2135d067bff28ed7b9adb760f61f5e91f375f91e22e7e42ace24d",
    "pima-indians-diabetes.csv": "6bfe5d0f379d17a0e0819b996407e3c09bf80febd4287f2ed212190dfff154af",
    "sonar.csv": "3079c09b5d2789a0f96aff82c28e5164fafe2495c5f8da96c6c256c1bd25763f",
    "spambase.data": "6e10fd83c424ebdca457a37042117f46dc08ebfd236728880b797385309fe29c",
}


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/stream-ensemble/datasets`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stream-ensemble" / "datasets"


def default_data_dir() -> Path:
    """``$SE_DATA_DIR`` if set, else :func:`user_cache_dir`."""
    env = os.environ.get("SE_DATA_DIR")
    return Path(env) if env else user_cache_dir()


def verify(data_dir: Path) -> dict[str, str]:
    """State of every known file in ``data_dir``: ``ok``, ``missing`` or ``checksum mismatch``."""
    out = {}
    for name, digest in SHA256.items():
        path = data_dir / name
        out[name] = "missing" if not path.is_file() else ("ok" if sha256_of(path) == digest else "checksum mismatch")
    return out


def fetch(source: str, dest: Path, progress: Callable[[str, str], None] = lambda name, state: None) -> dict[str, str]:
    """Copy each known file from ``source`` (a URL prefix) into ``dest``, verified.

    A file already present with the right checksum is kept; a download whose checksum does
    not match is discarded (never written under its name).

    Returns
    -------
    dict of str to str
        File name -> ``present``, ``fetched``, ``checksum mismatch`` or ``failed: <reason>``.

    Raises
    ------
    ConfigError
        ``source`` is not an http(s):// or file:// URL.
    """
    if not source.startswith(("https://", "http://", "file://")):
        raise ConfigError(f"--from must be an https://, http:// or file:// URL, got {source!r}")
    dest.mkdir(parents=True, exist_ok=True)
    base = source.rstrip("/") + "/"
    out: dict[str, str] = {}
    for name, digest in SHA256.items():
        target = dest / name
        if target.is_file() and sha256_of(target) == digest:
            out[name] = "present"
        else:
            with tempfile.NamedTemporaryFile(dir=dest, prefix=f".{name}.", delete=False) as tmp:
                tmp_path = Path(tmp.name)
                try:
                    with urllib.request.urlopen(base + name, timeout=60) as resp:  # noqa: S310 - scheme checked above
                        shutil.copyfileobj(resp, tmp)
                except OSError as exc:
                    out[name] = f"failed: {exc}"
            if name not in out:
                if sha256_of(tmp_path) == digest:
                    tmp_path.replace(target)
                    out[name] = "fetched"
                else:
                    out[name] = "checksum mismatch"
            tmp_path.unlink(missing_ok=True)
        progress(name, out[name])
    return out
