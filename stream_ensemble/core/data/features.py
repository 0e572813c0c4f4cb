"""Feature encoding: raw feature records -> one float64 model matrix per batch.

The encoder is fitted once at training time and shipped in the registry with the pool, so
the worker turns a whole batch of decoded events into the matrix every member consumes, in
one pass (members never see raw records).

Numeric columns: missing values (``None``, NaN, absent key) are imputed with the training
median, then standardised. Categorical columns: one-hot over the training categories (the
``max_categories`` most frequent); an unseen or missing category encodes as all zeros.
A numeric column that receives a non-numeric value is an error for that row only
(``bad_rows`` reports it), never for the batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from stream_ensemble.errors import ModelPoolError
from stream_ensemble.types import Matrix


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Result of :meth:`FeatureEncoder.transform_records`.

    Attributes
    ----------
    X : ndarray of shape (n_ok, n_outputs)
        Model input for the rows that encoded cleanly, in input order.
    ok : ndarray of shape (n_records,), bool
        True where the record encoded; ``X`` holds exactly these rows.
    errors : dict
        Row index -> reason, for the rows where ``ok`` is False.
    """

    X: Matrix
    ok: np.ndarray
    errors: dict[int, str]


class FeatureEncoder:
    """Map feature records (dicts) or a table to a standardised float64 matrix.

    Parameters
    ----------
    numeric : sequence of str
        Names of numeric features.
    categorical : sequence of str
        Names of categorical features (values are strings).
    max_categories : int, default=30
        Most frequent categories kept per categorical feature.
    """

    def __init__(
        self, numeric: Sequence[str], categorical: Sequence[str] = (), max_categories: int = 30
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.max_categories = max_categories

    # ------------------------------------------------------------------ fit
    def fit(self, columns: Mapping[str, Any]) -> FeatureEncoder:
        """Learn medians, scales and categories.

        Parameters
        ----------
        columns : mapping of str to sequence
            Feature name -> the training values of that feature, each of length n_rows.

        Returns
        -------
        self : FeatureEncoder
        """
        if not self.numeric and not self.categorical:
            raise ModelPoolError("FeatureEncoder needs at least one feature")
        num = np.column_stack([_to_float(columns[c]) for c in self.numeric]) if self.numeric else None
        if num is not None:
            med = np.nanmedian(num, axis=0)
            self.median_ = np.where(np.isnan(med), 0.0, med)
            filled = np.where(np.isnan(num), self.median_, num)
            self.mean_ = filled.mean(axis=0)
            std = filled.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        else:
            self.median_ = self.mean_ = self.scale_ = np.zeros(0)
        self.categories_: dict[str, list[str]] = {}
        for c in self.categorical:
            counts = Counter(str(v) for v in columns[c] if not _is_missing(v))
            self.categories_[c] = [k for k, _ in counts.most_common(self.max_categories)]
        self.feature_names_ = list(self.numeric) + list(self.categorical)
        self.output_names_ = list(self.numeric) + [
            f"{c}={k}" for c in self.categorical for k in self.categories_[c]
        ]
        return self

    @property
    def n_outputs(self) -> int:
        """Width of the model matrix."""
        return len(self.output_names_)

    # ------------------------------------------------------------ transform
    def transform_columns(self, columns: Mapping[str, Any]) -> Matrix:
        """Encode a table given column-wise (training / benchmark path).

        Parameters
        ----------
        columns : mapping of str to sequence
            Feature name -> values, each of length n_rows.

        Returns
        -------
        X : ndarray of shape (n_rows, n_outputs)
        """
        n = len(next(iter(columns.values())))
        num = (
            np.column_stack([_to_float(columns[c]) for c in self.numeric])
            if self.numeric
            else np.zeros((n, 0))
        )
        cats = [[None if _is_missing(v) else str(v) for v in columns[c]] for c in self.categorical]
        return self._assemble(num, cats)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> EncodedBatch:
        """Encode a batch of feature dicts (serving path).

        An absent key or ``None`` is a missing value (imputed). A value of the wrong type
        marks that row bad; the other rows are still encoded.

        Parameters
        ----------
        records : sequence of dict
            One feature dict per event, length n_records.

        Returns
        -------
        EncodedBatch
        """
        n = len(records)
        ok = np.ones(n, dtype=bool)
        errors: dict[int, str] = {}
        if self.numeric:
            rows = self._numeric_rows(records)
            try:
                # Fast path: one C-level conversion for the whole batch (None -> NaN).
                num = np.array(rows, dtype=np.float64).reshape(n, len(self.numeric))
            except (TypeError, ValueError):
                num = np.empty((n, len(self.numeric)))
                for i, row in enumerate(rows):
                    try:
                        num[i] = np.array(row, dtype=np.float64)
                    except (TypeError, ValueError):
                        bad = [c for c, v in zip(self.numeric, row) if not _is_number(v)]
                        errors[i] = f"non-numeric value for numeric feature(s): {', '.join(bad)}"
                        ok[i] = False
                        num[i] = np.nan
            if np.isinf(num).any():
                for bad_row in np.flatnonzero(np.isinf(num).any(axis=1)).tolist():
                    errors[bad_row] = "infinite value in numeric feature"
                    ok[bad_row] = False
        else:
            num = np.zeros((n, 0))
        cats: list[list[str | None]] = []
        for c in self.categorical:
            col: list[str | None] = []
            for i, r in enumerate(records):
                v = r.get(c)
                if v is None or isinstance(v, str):
                    col.append(v)
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    col.append(str(v))
                else:
                    errors[i] = f"categorical feature {c!r} must be a string"
                    ok[i] = False
                    col.append(None)
            cats.append(col)
        X = self._assemble(num, cats)
        return EncodedBatch(X=X[ok], ok=ok, errors=errors)

    def _numeric_rows(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        # itemgetter does the per-record lookups in C; records with an absent key (rare)
        # take the slower .get path so the absent value becomes a missing value.
        if not hasattr(self, "_getter"):
            self._getter = itemgetter(*self.numeric) if len(self.numeric) > 1 else (lambda r: (r[self.numeric[0]],))
        get, names = self._getter, self.numeric
        rows: list[Any] = []
        for r in records:
            try:
                rows.append(get(r))
            except KeyError:
                rows.append([r.get(c) for c in names])
        return rows

    def _assemble(self, num: np.ndarray, cats: list[list[str | None]]) -> Matrix:
        parts = []
        if self.numeric:
            filled = np.where(np.isnan(num), self.median_, num)
            parts.append((filled - self.mean_) / self.scale_)
        for c, col in zip(self.categorical, cats):
            index = {k: j for j, k in enumerate(self.categories_[c])}
            codes = np.fromiter((index.get(v, -1) if v is not None else -1 for v in col), np.int64, len(col))
            onehot = np.zeros((len(col), len(index)))
            hit = codes >= 0
            onehot[np.flatnonzero(hit), codes[hit]] = 1.0
            parts.append(onehot)
        return np.ascontiguousarray(np.hstack(parts), dtype=np.float64)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _to_float(values: Any) -> np.ndarray:
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            out[i] = np.nan if v is None or v == "" else float(v)
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def raw_encoder(numeric: Sequence[str], columns: Mapping[str, Any]) -> FeatureEncoder:
    """An encoder that passes numeric features through unscaled, in the given order.

    For members a user fitted outside the project (``models add``): they take their features
    as they were trained on them, so the model matrix is the raw values, with only missing
    values imputed (by the medians of ``columns``, as every encoder does).

    Parameters
    ----------
    numeric : sequence of str
        Feature names in the members' input order.
    columns : mapping of str to sequence
        Values to take the medians from (the holdout's).

    Returns
    -------
    FeatureEncoder
        Fitted, with ``mean_ = 0`` and ``scale_ = 1``.
    """
    enc = FeatureEncoder(numeric).fit(columns)
    enc.mean_ = np.zeros(len(enc.numeric))
    enc.scale_ = np.ones(len(enc.numeric))
    return enc
