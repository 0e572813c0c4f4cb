"""JSON-ready numbers: significant-digit rounding and non-finite values as ``None``."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def round_sig(x: npt.ArrayLike, digits: int = 6) -> FloatArray:
    """Round to ``digits`` significant digits, vectorised (non-finite values pass through).

    Parameters
    ----------
    x : array-like of any shape
        Values.
    digits : int, default=6
        Significant digits.

    Returns
    -------
    ndarray of the shape of ``x``
        Rounded values; ``0`` stays ``0``.

    Raises
    ------
    None

    Examples
    --------
    >>> round_sig([0.123456789, -98765.4321, 0.0, 1e-9 / 3]).tolist()
    [0.123457, -98765.4, 0.0, 3.33333e-10]
    >>> round_sig([1.23456789e-310, 5e-324]).tolist()
    [1.23457e-310, 5e-324]
    """
    a = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(a) & (a != 0)
    safe = np.where(ok, np.abs(a), 1.0)
    decimals = digits - 1 - np.floor(np.log10(safe)).astype(np.int64)
    # Divide by an exact power of ten (never multiply by an inexact 10**-k) so the result is
    # the double nearest the decimal and prints with at most `digits` digits.
    # Beyond 10**308 the power overflows (a tiny but finite member probability such as 1e-310
    # gave inf/inf = NaN, serialised as null): those rare values are rounded one by one.
    huge = np.abs(decimals) > 300
    up = 10.0 ** np.where(huge, 0, np.abs(decimals))
    scaled = np.where(decimals >= 0, np.round(a * up) / up, np.round(a / up) * up)
    out = np.where(ok, scaled, a)
    for idx in zip(*np.nonzero(ok & huge)):
        out[idx] = float(f"{a[idx]:.{digits}g}")
    return out


def json_list(a: FloatArray) -> list[Any]:
    """Rounded, with non-finite values as None (JSON has no NaN)."""
    r = round_sig(a)
    out: list[Any] = r.tolist()
    if not np.all(np.isfinite(r)):
        bad = ~np.isfinite(r)
        obj = r.astype(object)
        obj[bad] = None
        out = obj.tolist()
    return out
