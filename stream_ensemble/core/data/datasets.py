"""Tabular datasets for training and benchmarks: the bundled default and any CSV.

A :class:`Dataset` keeps raw columns (so the same values can be turned into feature events
for the demo) plus integer labels. Column types are inferred: a column whose non-missing
values all parse as numbers is numeric, anything else categorical.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_ensemble.errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """A classification table with K >= 2 classes.

    Attributes
    ----------
    name : str
    columns : dict of str to ndarray of shape (n_rows,)
        Raw feature values (float64 for numeric columns, object for categorical).
    numeric, categorical : list of str
        Feature names by type, in column order.
    y : ndarray of shape (n_rows,), int64
        Label index into ``classes`` (``0..K-1``); for K = 2, 1 = positive class.
    classes : list of str
        Original label values in index order. For K = 2, ``classes[1]`` is the positive
        class; for K > 2, the sorted label values.
    """

    name: str
    columns: dict[str, np.ndarray]
    numeric: list[str]
    categorical: list[str]
    y: np.ndarray
    classes: list[str]

    @property
    def features(self) -> list[str]:
        """All feature names in column order."""
        return [c for c in self.columns]

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.y.shape[0])

    def subset(self, rows: np.ndarray) -> Dataset:
        """Rows ``rows`` (index array) of this dataset."""
        return Dataset(
            self.name,
            {c: v[rows] for c, v in self.columns.items()},
            self.numeric,
            self.categorical,
            self.y[rows],
            self.classes,
        )

    def records(self, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Feature dicts (JSON-ready: NaN becomes None) for ``rows`` (default: all)."""
        idx = np.arange(self.n_rows) if rows is None else rows
        out: list[dict[str, Any]] = []
        for i in idx:
            rec: dict[str, Any] = {}
            for c, v in self.columns.items():
                x = v[i]
                if c in self.numeric:
                    rec[c] = None if np.isnan(x) else float(x)
                else:
                    rec[c] = None if x is None else str(x)
            out.append(rec)
        return out

    def fingerprint(self) -> str:
        """sha256 of the data (features and labels), identifying what a model was trained on."""
        h = hashlib.sha256()
        for c, v in self.columns.items():
            h.update(c.encode())
            h.update(np.asarray(v, dtype=str).tobytes() if v.dtype == object else v.tobytes())
        h.update(self.y.tobytes())
        return h.hexdigest()


#: Datasets :func:`load_bundled` knows.
BUNDLED = ("breast_cancer", "wine", "digits")


def load_bundled(name: str = "breast_cancer") -> Dataset:
    """Load a dataset that ships inside scikit-learn (no download).

    Parameters
    ----------
    name : {"breast_cancer", "wine", "digits"}
        ``breast_cancer``: Wisconsin diagnostic breast cancer, 569 rows, 30 numeric features,
        binary; the positive class is ``malignant`` (the class a screening system must catch).
        ``wine``: 178 rows, 13 features, 3 cultivars. ``digits``: 1,797 8x8 images, 64
        features, 10 classes.

    Raises
    ------
    ConfigError
        Unknown name.
    """
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine

    if name in ("wine", "digits"):
        raw = (load_wine if name == "wine" else load_digits)()
        names = [str(n).replace(" ", "_").replace("/", "_") for n in raw.feature_names]
        columns = {n: raw.data[:, j].astype(np.float64) for j, n in enumerate(names)}
        classes = [str(c) for c in raw.target_names]
        return Dataset(name, columns, names, [], raw.target.astype(np.int64), classes)
    if name != "breast_cancer":
        raise ConfigError(f"unknown bundled dataset {name!r}; available: {', '.join(BUNDLED)}")
    raw = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in raw.feature_names]
    columns = {n: raw.data[:, j].astype(np.float64) for j, n in enumerate(names)}
    # sklearn codes malignant as 0; we want the positive class at index 1.
    y = (raw.target == 0).astype(np.int64)
    return Dataset(name, columns, names, [], y, ["benign", "malignant"])


def from_frame(frame: Any, label: str, positive: str | None, name: str) -> Dataset:
    """Build a :class:`Dataset` from a pandas DataFrame.

    Parameters
    ----------
    frame : pandas.DataFrame
        Features plus the label column; ``"?"`` and empty strings count as missing.
    label : str
        Label column name.
    positive : str or None
        Label value of the positive class; default: the less frequent of two values. Only
        meaningful for a binary label; with K > 2 values it must be None.

    Raises
    ------
    ConfigError
        Label column missing, with fewer than 2 values, or ``positive`` not among its values
        (or given for a K > 2 label).
    """
    if label not in frame.columns:
        raise ConfigError(f"label column {label!r} not found; columns are: {', '.join(map(str, frame.columns))}")
    labels = frame[label].astype(str).str.strip().str.rstrip(".").str.strip("'\"")
    values = sorted(labels.unique())
    if len(values) < 2:
        raise ConfigError(f"label column {label!r} must have at least 2 values, found {len(values)}: {values[:10]}")
    if len(values) > 2:
        if positive is not None:
            raise ConfigError(f"--positive is only for a binary label; {label!r} has {len(values)} values: {values[:10]}")
        y = labels.map({v: i for i, v in enumerate(values)}).to_numpy().astype(np.int64)
        classes = values
    else:
        y, classes = _binary_labels(labels, values, positive, label)
    columns, numeric, categorical = _feature_columns(frame, label)
    return Dataset(name, columns, numeric, categorical, y, classes)


def _binary_labels(labels: Any, values: list[str], positive: str | None, label: str) -> tuple[np.ndarray, list[str]]:
    """Binary label indices (1 = ``positive``, default the rarer value) and ``[negative, positive]``."""
    if positive is None:
        counts = labels.value_counts()
        positive = str(counts.index[-1])
    positive = positive.strip().strip("'\"")
    if positive not in values:
        raise ConfigError(f"--positive {positive!r} is not a value of {label!r}; values: {values}")
    negative = values[0] if values[1] == positive else values[1]
    y = (labels == positive).to_numpy().astype(np.int64)
    return y, [negative, positive]


def _feature_columns(frame: Any, label: str) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Every column but ``label`` as float64 (numeric) or object (text) values, plus the type lists."""
    columns: dict[str, np.ndarray] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    import pandas as pd

    for c in frame.columns:
        if c == label:
            continue
        col = frame[c]
        # pandas 3 reads text as the "str" dtype, pandas 2 as object: treat both as text.
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            col = col.astype(object).where(col.notna(), None).map(_text_or_none)
        as_num = pd.to_numeric(col, errors="coerce")
        present = col.notna()
        if present.sum() and as_num[present].notna().all():
            columns[str(c)] = np.asarray(as_num, dtype=np.float64)
            numeric.append(str(c))
        else:
            columns[str(c)] = np.array([None if pd.isna(v) else str(v) for v in col], dtype=object)
            categorical.append(str(c))
    return columns, numeric, categorical


def _text_or_none(v: Any) -> str | None:
    """A stripped text cell, or None for a missing marker (``?``, empty, ``nan``)."""
    if v is None:
        return None
    text = str(v).strip()
    return None if text in ("?", "", "nan") else text


def load_csv(path: str | Path, label: str, positive: str | None = None, header: bool = True) -> Dataset:
    """Load any CSV with a label column of K >= 2 values.

    Parameters
    ----------
    path : str or Path
    label : str
        Label column name (with ``header=False`` columns are named ``c0, c1, ...``).
    positive : str, optional
        Positive class value of a binary label; default the rarer one.
    header : bool, default=True

    Raises
    ------
    ConfigError
        File missing or unreadable, or label problems (see :func:`from_frame`).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"CSV file not found: {p}")
    try:
        frame = pd.read_csv(p, header=0 if header else None, skipinitialspace=True, na_values=["?"])
    except Exception as exc:  # pandas raises many types; report one clear line
        raise ConfigError(f"cannot read CSV {p}: {exc}") from exc
    if not header:
        frame.columns = [f"c{i}" for i in range(frame.shape[1])]
    frame.columns = [str(c).strip() for c in frame.columns]
    return from_frame(frame, label, positive, p.stem)


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...], random_state: int
) -> list[np.ndarray]:
    """Split row indices into stratified parts.

    Parameters
    ----------
    y : ndarray of shape (n_rows,)
    fractions : tuple of float
        Fractions per part, summing to 1.
    random_state : int

    Returns
    -------
    list of ndarray
        Index arrays, one per fraction, disjoint, covering all rows.
    """
    rng = np.random.default_rng(random_state)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum((0.0,) + fractions)
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.round(bounds * len(idx)).astype(int)
        for k in range(len(fractions)):
            parts[k].append(idx[cuts[k] : cuts[k + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]
