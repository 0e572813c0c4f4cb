"""Memoised selection per healthy set: the re-selection cache behind serving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from stream_ensemble.core.selection.constraints import SelectionConstraints, SelectionResult
from stream_ensemble.core.selection.objective import FloatArray
from stream_ensemble.core.selection.select import select
from stream_ensemble.types import Labels, Mask, Proba


def hex_keyed(d: dict[bytes, Any]) -> dict[str, Any]:
    """A mask-keyed dict with hex string keys, for saved state.

    The registry's skops format stores dicts with string keys only; masks key memo dicts
    by ``mask.tobytes()``.

    >>> hex_keyed({b"\\x01\\x00": 1})
    {'0100': 1}
    """
    return {key.hex(): value for key, value in d.items()}


def bytes_keyed(d: dict[Any, Any]) -> dict[bytes, Any]:
    """Inverse of :func:`hex_keyed`; bytes keys (pickles written before) are kept as they are.

    >>> bytes_keyed({"0100": 1, b"\\x01": 2})
    {b'\\x01\\x00': 1, b'\\x01': 2}
    """
    return {bytes.fromhex(k) if isinstance(k, str) else k: value for k, value in d.items()}


class SelectionCache:
    """Memoised selection per distinct healthy set.

    Parameters
    ----------
    select_fn : callable ``(allowed (n_models,) bool) -> SelectionResult``

    Notes
    -----
    The only mutable state is the result dict, keyed by ``allowed.tobytes()``; meant for a
    single worker thread.
    """

    def __init__(self, select_fn: Callable[[Mask], SelectionResult]) -> None:
        self.select_fn = select_fn
        self._results: dict[bytes, SelectionResult] = {}

    def get(self, allowed: Mask) -> SelectionResult:
        """Selection for this healthy set (computed once, then cached).

        Parameters
        ----------
        allowed : ndarray of shape (n_models,), bool

        Returns
        -------
        SelectionResult

        Raises
        ------
        SelectionError
            No feasible selection among the allowed members.
        """
        key = np.ascontiguousarray(allowed, dtype=bool).tobytes()
        hit = self._results.get(key)
        if hit is None:
            hit = self._results[key] = self.select_fn(np.frombuffer(key, dtype=bool).copy())
        return hit

    def __len__(self) -> int:
        return len(self._results)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_results": hex_keyed(self._results)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "_results": bytes_keyed(state.get("_results", {}))})

    @classmethod
    def from_validation(
        cls,
        P: Proba,
        y: Labels,
        costs: FloatArray,
        constraints: SelectionConstraints | None = None,
        *,
        reselect_time_limit_s: float = 0.02,
    ) -> SelectionCache:
        """Cache over held-out data: full selection for the all-healthy set, fast re-selection after.

        The all-healthy selection runs now with ``constraints``; a new healthy set runs
        branch-and-bound with ``reselect_time_limit_s``, warm-started from the surviving
        members of the full selection (so it returns in milliseconds and is never worse than
        simply dropping the unhealthy members, when that is feasible).

        Parameters
        ----------
        P : ndarray of shape (n_events, n_models, n_classes)
        y : ndarray of shape (n_events,)
        costs : ndarray of shape (n_models,)
        constraints : SelectionConstraints, optional
        reselect_time_limit_s : float

        Returns
        -------
        SelectionCache

        Raises
        ------
        SelectionError
            The all-healthy problem is infeasible or inputs are invalid.
        ConfigError
            Invalid constraints.
        """
        c = constraints or SelectionConstraints()
        base = select(P, y, costs=costs, constraints=c)
        fast = replace(c, time_limit_s=reselect_time_limit_s)

        def select_fn(allowed: Mask) -> SelectionResult:
            return select(P, y, costs=costs, constraints=fast, allowed=allowed, incumbent=base.weights * allowed)

        cache = cls(select_fn)
        cache._results[np.ones(base.mask.shape[0], dtype=bool).tobytes()] = base
        return cache
