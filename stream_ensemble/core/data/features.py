"""Feature encoding: raw feature records -> one float64 model matrix per batch.

The encoder is fitted once at training time and shipped in the registry with the pool, so
the worker turns a whole batch of decoded events into the matrix every member consumes, in
one pass (members never see raw records).

Numeric columns: missing values (``None``, NaN, absent key) are imputed with the training
median, then standardised. Categorical columns: one-hot over the training categories (the
``max_categories`` most frequent); an unseen or missing category encodes as all zeros.
On the serving path a row is refused, alone, never the batch (``EncodedBatch.errors`` /
``kinds``): a numeric feature given anything but a JSON number or null -- a string is never
a number, ``"17.99"`` included (``feature_type``); fewer than ``min_known_share`` of the
encoder's features present and non-null (``too_few_features``: a producer's typo in feature
names would otherwise be scored on medians alone); a standardised value beyond
:data:`MAX_ABS_Z` or non-finite (``out_of_range``: ``1e308`` overflows in standardisation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from stream_ensemble.errors import ModelPoolError
from stream_ensemble.types import Matrix

#: Largest standardised magnitude a served value may have: |z| beyond it is no measurement of
#: the population the members were trained on (a wrong unit, a sentinel such as 1e308).
MAX_ABS_Z = 1e6


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
    imputed : ndarray of shape (n_records,), int
        Features of the encoder absent, null or NaN in each record (imputed / encoded as
        missing).
    kinds : dict
        Row index -> error class (``feature_type``, ``too_few_features``, ``out_of_range``)
        for the rows of ``errors``.
    key_rows : ndarray of shape (n_records, n_numeric + n_categorical), float64
        What a row's score is a function of, before imputation: the numeric values (NaN where
        missing) then each categorical column's category index (-1 unseen, -2 missing). Equal
        rows give equal ``X`` rows and ``imputed`` counts, so their bytes key the prediction
        cache and the in-batch de-duplication (fields the encoder ignores play no part).
    """

    X: Matrix
    ok: np.ndarray
    errors: dict[int, str]
    imputed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kinds: dict[int, str] = field(default_factory=dict)
    key_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


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

    def transform_records(self, records: Sequence[Mapping[str, Any]], min_known_share: float = 0.0,
                          max_abs_z: float | None = None) -> EncodedBatch:
        """Encode a batch of feature dicts (serving path).

        An absent key or ``None`` is a missing value (imputed). A row is refused alone (see
        the module docstring); the other rows are still encoded.

        Parameters
        ----------
        records : sequence of dict
            One feature dict per event, length n_records.
        min_known_share : float, default=0.0
            Least share of the encoder's features a record must give (present, non-null).
        max_abs_z : float, optional
            Largest accepted magnitude of a standardised numeric value (default
            :data:`MAX_ABS_Z`, read at each call).

        Returns
        -------
        EncodedBatch
        """
        n = len(records)
        ok = np.ones(n, dtype=bool)
        errors: dict[int, str] = {}
        kinds: dict[int, str] = {}
        if self.numeric:
            num = self._numeric_matrix(records, ok, errors)
            if np.isinf(num).any():
                for bad_row in np.flatnonzero(np.isinf(num).any(axis=1)).tolist():
                    errors[bad_row] = "infinite value in numeric feature"
                    ok[bad_row] = False
        else:
            num = np.zeros((n, 0))
        imputed = np.isnan(num).sum(axis=1).astype(np.int64)
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
            imputed += np.fromiter((v is None for v in col), np.int64, n)
            cats.append(col)
        kinds.update((i, "feature_type") for i in errors)
        self._check_known_share(records, imputed, min_known_share, ok, errors, kinds)
        codes = [self._category_codes(c, col) for c, col in zip(self.categorical, cats)]
        X = self._assemble(num, cats, codes)
        self._check_magnitude(X, MAX_ABS_Z if max_abs_z is None else max_abs_z, ok, errors, kinds)
        key_rows = np.ascontiguousarray(np.column_stack([num, *codes]) if codes else num, dtype=np.float64)
        return EncodedBatch(X=X[ok], ok=ok, errors=errors, imputed=imputed, kinds=kinds, key_rows=key_rows)

    def _numeric_matrix(self, records: Sequence[Mapping[str, Any]], ok: np.ndarray, errors: dict[int, str]) -> np.ndarray:
        """Raw numeric values, shape (n_records, n_numeric), NaN where missing or refused."""
        n = len(records)
        rows = self._numeric_rows(records)
        try:
            # Fast path: one C-level conversion for the whole batch (None -> NaN). numpy
            # parses numeric strings, so a batch holding any string takes the per-row path.
            if str in set(map(type, chain.from_iterable(rows))):
                raise TypeError("a string among numeric values")
            return np.array(rows, dtype=np.float64).reshape(n, len(self.numeric))
        except (TypeError, ValueError):
            num = np.empty((n, len(self.numeric)))
            for i, row in enumerate(rows):
                bad = [c for c, v in zip(self.numeric, row) if not _is_number(v)]
                if bad:
                    errors[i] = f"numeric feature(s) must be a JSON number or null (a string is not a number): {', '.join(bad)}"
                    ok[i] = False
                    num[i] = np.nan
                else:
                    num[i] = np.array(row, dtype=np.float64)
            return num

    def _check_known_share(self, records: Sequence[Mapping[str, Any]], imputed: np.ndarray, min_share: float,
                           ok: np.ndarray, errors: dict[int, str], kinds: dict[int, str]) -> None:
        width = len(self.feature_names_)
        known = width - imputed
        for i in np.flatnonzero(ok & (known < min_share * width)).tolist():
            names = set(self.feature_names_)
            unknown = sorted(str(k) for k in records[i] if k not in names)
            hint = f"; unknown features: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}" if unknown else ""
            errors[i] = (f"only {int(known[i])} of the {width} features the ensemble uses are present and non-null "
                         f"(minimum share {min_share:g}){hint}")
            kinds[i] = "too_few_features"
            ok[i] = False

    def _check_magnitude(self, X: np.ndarray, max_abs_z: float, ok: np.ndarray, errors: dict[int, str],
                         kinds: dict[int, str]) -> None:
        k = len(self.numeric)
        if k == 0:
            return
        with np.errstate(all="ignore"):
            z = np.abs(X[:, :k])
            bad = ~(z <= max_abs_z)  # NaN and inf compare False
        for i in np.flatnonzero(ok & bad.any(axis=1)).tolist():
            worst = int(np.argmax(np.where(np.isnan(z[i]), np.inf, z[i])))
            errors[i] = (f"numeric feature {self.numeric[worst]!r} is {z[i, worst]:.3g} standard deviations from its "
                         f"training mean (limit {max_abs_z:g}, or not finite after standardisation)")
            kinds[i] = "out_of_range"
            ok[i] = False

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

    def _category_codes(self, c: str, col: list[str | None]) -> np.ndarray:
        """Category index per row of column ``c``, shape (n,): -1 unseen, -2 missing."""
        index = {k: j for j, k in enumerate(self.categories_[c])}
        return np.fromiter((index.get(v, -1) if v is not None else -2 for v in col), np.int64, len(col))

    def _assemble(self, num: np.ndarray, cats: list[list[str | None]], codes: list[np.ndarray] | None = None) -> Matrix:
        parts = []
        if self.numeric:
            filled = np.where(np.isnan(num), self.median_, num)
            parts.append((filled - self.mean_) / self.scale_)
        for k, (c, col) in enumerate(zip(self.categorical, cats)):
            code = self._category_codes(c, col) if codes is None else codes[k]
            onehot = np.zeros((len(col), len(self.categories_[c])))
            hit = code >= 0
            onehot[np.flatnonzero(hit), code[hit]] = 1.0
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
