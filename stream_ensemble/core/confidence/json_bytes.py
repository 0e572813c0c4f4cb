"""JSON bytes of a batch, built column by column instead of one dict per row.

A scored event is a fixed template of keys around per-row values. Building a dict per row and
encoding it costs ~1 us per key in Python; here each value *column* is encoded once for the
whole batch (one ``orjson.dumps`` of the column's list, split at the commas), patterns that
repeat (which classes are in the set, which members were used) are encoded once per distinct
pattern, and each row is one ``bytes.join`` of the template's constants and its values.

The fragments are exactly what ``orjson.dumps`` writes for the same value inside a dict
(non-finite floats as ``null``), so the bytes equal those of the dict path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Union

import numpy as np
import numpy.typing as npt
import orjson

#: A template part: a constant written in every row, or one fragment per row.
Part = Union[bytes, Sequence[bytes]]

TRUE_FALSE: tuple[bytes, bytes] = (b"false", b"true")


def number_column(values: npt.ArrayLike) -> list[bytes]:
    """JSON fragment of each number of a 1-D array (NaN and +-inf as ``null``).

    Parameters
    ----------
    values : array-like of shape (n,)
        Floats (already rounded as they should be written) or ints.

    Returns
    -------
    list of bytes, length n
    """
    a = np.asarray(values)
    if a.size == 0:
        return []
    # Every fragment is a number or null, neither contains a comma: splitting is exact.
    return orjson.dumps(a.tolist())[1:-1].split(b",")


def bool_column(values: npt.ArrayLike) -> list[bytes]:
    """``true`` / ``false`` per element of a 1-D bool array."""
    return [TRUE_FALSE[v] for v in np.asarray(values, dtype=bool).tolist()]


def pattern_column(mask: npt.NDArray[np.bool_], render: Callable[[npt.NDArray[np.bool_]], bytes]) -> list[bytes]:
    """One fragment per row of a boolean matrix, ``render`` called once per distinct row.

    Parameters
    ----------
    mask : ndarray of bool, shape (n, k)
    render : callable
        Maps a row (shape (k,)) to its JSON fragment.

    Returns
    -------
    list of bytes, length n
    """
    if mask.shape[0] == 0:
        return []
    if mask.shape[1] == 0 or (mask == mask[0]).all():
        return [render(mask[0])] * mask.shape[0]
    uniq, inverse = np.unique(mask, axis=0, return_inverse=True)
    frags = [render(u) for u in uniq]
    return [frags[g] for g in inverse.reshape(-1).tolist()]


def join_rows(n: int, parts: Sequence[Part]) -> list[bytes]:
    """Each row's bytes: the parts in order, constants repeated, columns indexed by row.

    Parameters
    ----------
    n : int
        Rows.
    parts : sequence of (bytes or sequence of bytes of length n)

    Returns
    -------
    list of bytes, length n
    """
    cols: list[object] = []
    const = b""
    for p in parts:
        if isinstance(p, bytes):
            const += p  # adjacent constants become one
            continue
        if const:
            cols.append(repeat(const, n))
            const = b""
        cols.append(p)
    if const:
        cols.append(repeat(const, n))
    join = b"".join
    return [join(row) for row in zip(*cols)]


def object_parts(n: int, keys: Sequence[str], columns: Sequence[Part],
                 present: npt.NDArray[np.bool_] | None = None) -> list[Part]:
    """Template parts of a JSON object per row, from key names and value columns.

    Parameters
    ----------
    n : int
        Rows.
    keys : sequence of str, length k
    columns : sequence of (bytes or sequence of bytes of length n), length k
        Encoded values.
    present : ndarray of bool, shape (n, k), optional
        Which keys a row has (default: all). When rows differ, they are grouped by their
        pattern and the object is returned as one column.

    Returns
    -------
    list of Part
        For :func:`join_rows` (alone or spliced into a larger template).
    """
    heads = [orjson.dumps(k) + b":" for k in keys]

    def parts(cols: Sequence[Part], which: Sequence[int]) -> list[Part]:
        out: list[Part] = [b"{"]
        for pos, j in enumerate(which):
            out += [(b"," if pos else b"") + heads[j], cols[j]]
        return out + [b"}"]

    if present is None or present.all():
        return parts(columns, range(len(keys)))
    result: list[bytes] = [b""] * n
    uniq, inverse = np.unique(present, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for g, pattern in enumerate(uniq):
        idx = np.flatnonzero(inverse == g).tolist()
        sub: list[Part] = [c if isinstance(c, bytes) else [c[i] for i in idx] for c in columns]
        for i, value in zip(idx, join_rows(len(idx), parts(sub, np.flatnonzero(pattern).tolist()))):
            result[i] = value
    return [result]
