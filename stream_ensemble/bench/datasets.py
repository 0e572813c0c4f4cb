"""Loaders for the real benchmark datasets (``stream-ensemble datasets``; see ``bench/data_files.py``).

Each dataset has its own small quirks (no header, ``", "`` separators, quoted labels, trailing
dots on the adult test labels, ``?`` for missing values, an id column to drop, a header row of
numbers); a :class:`_Spec` per name records them, and :func:`load_shared` turns any of them into
a :class:`~stream_ensemble.core.data.Dataset` with the positive class the README names at
label index 1.

Adult ships as a train file and a test file. The benchmark draws its own repeated stratified
splits, so the two files are simply concatenated (48,842 rows) and the repeated splits do the
rest; ``max_rows`` takes a stratified, seeded subsample of any dataset larger than that to
bound the runtime (the number of rows used is reported with the results).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from stream_ensemble.core.data import Dataset, from_frame, stratified_split
from stream_ensemble.errors import ConfigError

_ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
)  # fmt: skip
_PIMA_COLUMNS = (
    "pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin", "bmi",
    "diabetes_pedigree", "age", "diabetes",
)  # fmt: skip
_BCW_COLUMNS = (
    "clump_thickness", "cell_size_uniformity", "cell_shape_uniformity", "marginal_adhesion",
    "epithelial_cell_size", "bare_nuclei", "bland_chromatin", "normal_nucleoli", "mitoses", "class",
)  # fmt: skip
# pima-indians-diabetes.names: a 0 in these columns is a missing measurement, not a value.
_PIMA_ZERO_IS_MISSING = ("glucose", "blood_pressure", "skin_thickness", "insulin", "bmi")


class SharedDataset(str, Enum):
    """Names of the real benchmark datasets."""

    ADULT = "adult"
    MAMMOGRAPHY = "mammography"
    PHONEME = "phoneme"
    SPAMBASE = "spambase"
    GERMAN = "german"
    PIMA = "pima"
    BANKNOTE = "banknote"
    IONOSPHERE = "ionosphere"
    SONAR = "sonar"
    BREAST_CANCER_WISCONSIN = "breast-cancer-wisconsin"


@dataclass(frozen=True)
class _Spec:
    """How one shared dataset is stored.

    Attributes
    ----------
    files : tuple of str
        File names, concatenated in this order.
    positive : str
        Label value of the positive class (after stripping quotes and trailing dots).
    columns : tuple of str, optional
        Column names (label last); default ``x0, x1, ..., label``.
    header : bool
        The first row is a header to skip (spambase's row of numbers).
    drop_first : bool
        Drop the first column (an id) when the file has one column more than ``columns``.
    zero_is_missing : tuple of str
        Columns where 0 encodes a missing value.
    """

    files: tuple[str, ...]
    positive: str
    columns: tuple[str, ...] = ()
    header: bool = False
    drop_first: bool = False
    zero_is_missing: tuple[str, ...] = ()


_SPECS: dict[SharedDataset, _Spec] = {
    SharedDataset.ADULT: _Spec(("adult-train.csv", "adult-test.csv"), ">50K", _ADULT_COLUMNS),
    SharedDataset.MAMMOGRAPHY: _Spec(("mammography.csv",), "1"),
    SharedDataset.PHONEME: _Spec(("phoneme.csv",), "1"),
    SharedDataset.SPAMBASE: _Spec(("spambase.data",), "1", header=True),
    SharedDataset.GERMAN: _Spec(("german.csv",), "2"),
    SharedDataset.PIMA: _Spec(
        ("pima-indians-diabetes.csv",), "1", _PIMA_COLUMNS, zero_is_missing=_PIMA_ZERO_IS_MISSING
    ),
    SharedDataset.BANKNOTE: _Spec(("banknote_authentication.csv",), "1"),
    SharedDataset.IONOSPHERE: _Spec(("ionosphere.csv",), "b"),
    SharedDataset.SONAR: _Spec(("sonar.csv",), "M"),
    SharedDataset.BREAST_CANCER_WISCONSIN: _Spec(
        ("breast-cancer-wisconsin.csv",), "4", _BCW_COLUMNS, drop_first=True
    ),
}

#: Every shared dataset name, in the README's order.
NAMES: tuple[str, ...] = tuple(d.value for d in SharedDataset)


def check_data_dir(data_dir: str | Path | None) -> Path:
    """Validate the datasets folder.

    Parameters
    ----------
    data_dir : str or Path or None
        Folder holding the shared dataset files.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    ConfigError
        ``data_dir`` is None, missing, not a folder, or holds none of the dataset files.
    """
    from stream_ensemble.bench.data_files import default_data_dir

    path = Path(data_dir) if data_dir is not None and str(data_dir) else default_data_dir()
    if not path.is_dir():
        raise ConfigError(f"datasets folder not found: {path} (pass --data-dir, set SE_DATA_DIR, "
                          "or run `stream-ensemble datasets fetch --from URL`)")
    if not available(path):
        raise ConfigError(f"no known dataset files in {path} (expected e.g. sonar.csv, adult-train.csv)")
    return path


def available(data_dir: str | Path) -> list[str]:
    """Names of the shared datasets whose files are all present in ``data_dir``.

    Parameters
    ----------
    data_dir : str or Path

    Returns
    -------
    list of str
        Names from :data:`NAMES`, in that order (empty if the folder is missing).

    Raises
    ------
    None
    """
    path = Path(data_dir)
    return [d.value for d, s in _SPECS.items() if all((path / f).is_file() for f in s.files)]


def parse_name(name: str) -> SharedDataset:
    """Look a shared dataset up by name.

    Parameters
    ----------
    name : str

    Returns
    -------
    SharedDataset

    Raises
    ------
    ConfigError
        Unknown name.
    """
    try:
        return SharedDataset(name.strip())
    except ValueError:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}") from None


def load_shared(name: str, data_dir: str | Path, max_rows: int | None = None, random_state: int = 0) -> Dataset:
    """Load one shared dataset with its positive class at label index 1.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    data_dir : str or Path
        The shared datasets folder.
    max_rows : int, optional
        Keep a stratified random subsample of this many rows when the dataset is larger.
    random_state : int, default=0
        Seed of that subsample.

    Returns
    -------
    Dataset
        ``y`` is 1 for the README's positive class; ``?`` (and pima's zero-coded
        measurements) are missing values.

    Raises
    ------
    ConfigError
        Unknown name, missing folder or file, unreadable file, ``max_rows < 2``.
    """
    import pandas as pd

    spec = _SPECS[parse_name(name)]
    path = check_data_dir(data_dir)
    frames = []
    for fname in spec.files:
        fpath = path / fname
        if not fpath.is_file():
            raise ConfigError(f"dataset file not found: {fpath}")
        try:
            frame = pd.read_csv(
                fpath,
                header=0 if spec.header else None,
                skipinitialspace=True,  # adult separates fields with ", "
                na_values=["?"],
                keep_default_na=False,
                dtype=str,
                skip_blank_lines=True,
            )
        except Exception as exc:  # pandas raises many types; report one clear line
            raise ConfigError(f"cannot read {fpath}: {exc}") from exc
        frames.append(frame.set_axis(range(frame.shape[1]), axis=1))
    frame = pd.concat(frames, ignore_index=True)
    # The README says breast-cancer-wisconsin starts with a sample id, but the shipped file
    # (SHA256SUMS) already lacks it: 10 columns whose first is clump thickness (1-10). Drop an id
    # only when it is really there, so the UCI original (11 columns) loads too.
    if spec.drop_first and spec.columns and frame.shape[1] == len(spec.columns) + 1:
        frame = frame.iloc[:, 1:]
    width = frame.shape[1]
    names = list(spec.columns) if spec.columns else [f"x{j}" for j in range(width - 1)] + ["label"]
    if len(names) != width:
        raise ConfigError(f"{name}: expected {len(names)} columns, found {width}")
    frame = frame.set_axis(names, axis=1)
    for col in spec.zero_is_missing:
        # "?" is the missing marker from_frame understands for every column type.
        frame.loc[pd.to_numeric(frame[col], errors="coerce") == 0, col] = "?"
    data = from_frame(frame, names[-1], spec.positive, name)
    if max_rows is not None:
        data = subsample(data, max_rows, random_state)
    return data


def subsample(data: Dataset, max_rows: int, random_state: int = 0) -> Dataset:
    """Stratified random subsample of at most ``max_rows`` rows.

    Parameters
    ----------
    data : Dataset
    max_rows : int
        Rows to keep; the dataset is returned unchanged when it is not larger.
    random_state : int, default=0

    Returns
    -------
    Dataset
        About ``max_rows`` rows (per-class rounding), class ratio preserved.

    Raises
    ------
    ConfigError
        ``max_rows < 2``.
    """
    if max_rows < 2:
        raise ConfigError(f"--max-rows must be at least 2, got {max_rows}")
    if data.n_rows <= max_rows:
        return data
    frac = max_rows / data.n_rows
    keep = stratified_split(data.y, (frac, 1.0 - frac), random_state)[0]
    return data.subset(np.asarray(keep))
