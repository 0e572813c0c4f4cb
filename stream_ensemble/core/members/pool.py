"""The model pool: fitted members with a shared class order, run once per batch.

Members are isolated per row: an output row that is non-finite, outside [0, 1] or does not
sum to 1 drops that member for that row only. A call that raises or returns a wrong shape is
retried on the subset where it can succeed -- first the rows whose inputs are all finite (a
value like 1e308 overflows standardisation to inf, which sklearn rejects for the whole
call), then by bisection with a small call budget -- so one poison row costs its
neighbours nothing. A wrong output shape is a member bug: dropped for the batch, no retry. A member that takes longer than its
deadline is reported as timed out: with the member threads of
:mod:`~stream_ensemble.core.members.deadline` the batch stops waiting at the deadline (sklearn
calls cannot be pre-empted; the late call finishes in the background), without them a late
result is discarded after the fact.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_ensemble.core.members.deadline import Late, MemberThreads
from stream_ensemble.errors import ModelPoolError
from stream_ensemble.types import Mask, Matrix, Proba


@dataclass(frozen=True)
class Member:
    """One fitted pool member.

    Attributes
    ----------
    name : str
        Model id (``"knn"``), unique in the pool.
    version : int
        Registry version of the artifact.
    family : str
        Architecture family.
    estimator : object
        Fitted classifier with ``predict_proba``.
    cost_ms_per_1k : float
        Measured predict time per 1,000 rows (drives selection under a budget).
    """

    name: str
    version: int
    family: str
    estimator: Any
    cost_ms_per_1k: float

    @property
    def tag(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"


@dataclass
class PoolRun:
    """What happened when the pool ran on a batch.

    Attributes
    ----------
    proba : ndarray of shape (n_events, n_models, n_classes)
        NaN where a member did not run or failed.
    ok : ndarray of shape (n_events, n_models), bool
        True where the member's output is present and finite.
    failed : dict
        Member name -> reason (``failed: ...`` or ``timed_out: ...``).
    timed_out : set of str
        Members whose output was discarded for exceeding the deadline.
    seconds : dict
        Member name -> wall time spent.
    failed_rows : dict
        Member name -> number of rows it has no valid output for (all rows for a member
        that failed on the whole batch).
    """

    proba: Proba
    ok: Mask
    failed: dict[str, str] = field(default_factory=dict)
    timed_out: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    failed_rows: dict[str, int] = field(default_factory=dict)


#: Most extra calls a member that raised gets to isolate the rows it fails on.
ISOLATION_CALLS = 48
#: How far a member's probability may stray outside [0, 1], or its row sum from 1, before
#: the row is invalid (float noise of softmax / normalisation is far below this).
PROBA_TOLERANCE = 1e-6
SUM_TOLERANCE = 1e-3


class _CallFailed(Exception):
    """A member call raised or returned a wrong shape (the reason is the message)."""

    def __init__(self, reason: str, shape: bool = False) -> None:
        super().__init__(reason)
        self.shape = shape


def valid_rows(out: np.ndarray) -> np.ndarray:
    """Rows of a member output that are usable probabilities, shape (n,) bool.

    Parameters
    ----------
    out : ndarray of shape (n, n_classes)

    Returns
    -------
    ndarray of shape (n,), bool
        Finite, every entry within [0, 1] (up to :data:`PROBA_TOLERANCE`) and summing to 1
        (up to :data:`SUM_TOLERANCE`).
    """
    with np.errstate(invalid="ignore"):
        in_range = ((out >= -PROBA_TOLERANCE) & (out <= 1.0 + PROBA_TOLERANCE)).all(axis=1)
        sums = np.abs(out.sum(axis=1) - 1.0) <= SUM_TOLERANCE
    return np.asarray(np.isfinite(out).all(axis=1) & in_range & sums)


class ModelPool:
    """Named fitted members sharing ``classes_``.

    Parameters
    ----------
    members : sequence of Member
    classes : array-like of shape (n_classes,)
        Class labels in the canonical order; every member's ``classes_`` must equal it.

    Raises
    ------
    ModelPoolError
        Duplicate names or a member whose classes differ.
    """

    def __init__(self, members: Sequence[Member], classes: Sequence[Any] | np.ndarray) -> None:
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ModelPoolError(f"duplicate member names in pool: {names}")
        self.members = list(members)
        self.classes_ = np.asarray(classes)
        for m in self.members:
            est_classes = getattr(m.estimator, "classes_", None)
            if est_classes is not None and not np.array_equal(np.asarray(est_classes), self.classes_):
                raise ModelPoolError(f"member {m.name} has classes {est_classes}, pool has {self.classes_}")

    @property
    def names(self) -> list[str]:
        """Member names in pool order (the model axis of every array)."""
        return [m.name for m in self.members]

    @property
    def costs(self) -> np.ndarray:
        """Per-member cost, ms per 1,000 rows, shape (n_models,)."""
        return np.array([m.cost_ms_per_1k for m in self.members], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.members)

    def proba(self, X: Matrix, run: np.ndarray, deadline_s: float | None = None,
              threads: MemberThreads | None = None) -> PoolRun:
        """Run each member in ``run`` once on the whole batch.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        run : ndarray of shape (n_models,), bool
            Members to run; the others stay NaN / not ok.
        deadline_s : float, optional
            Per-member wall-time limit; a member over it is reported ``timed_out`` and its
            output discarded for this batch.
        threads : MemberThreads, optional
            With ``deadline_s``: each member runs on its own thread and the batch waits for
            it at most ``deadline_s`` (a late call goes on in the background; the member is
            skipped as ``timed_out`` while it runs). Without: members run inline and a late
            result is discarded after the fact.

        Returns
        -------
        PoolRun
        """
        n, m, c = X.shape[0], len(self.members), len(self.classes_)
        proba = np.full((n, m, c), np.nan)
        ok = np.zeros((n, m), dtype=bool)
        result = PoolRun(proba, ok)
        if n == 0:
            return result
        for j in np.flatnonzero(run):
            member = self.members[j]
            t0 = time.perf_counter()
            if threads is not None and deadline_s:
                try:
                    rows, out, why = threads.call(member.tag, functools.partial(self._run_member, member, X, c), deadline_s)
                except Late as exc:
                    rows, out, why = None, None, f"timed_out: {exc}"
            else:
                rows, out, why = self._run_member(member, X, c)
            result.seconds[member.name] = time.perf_counter() - t0
            if out is None or (deadline_s is not None and result.seconds[member.name] > deadline_s):
                result.timed_out.add(member.name)
                result.failed[member.name] = why if out is None else (
                    f"timed_out: {result.seconds[member.name]:.3f}s > {deadline_s:.3f}s")
                result.failed_rows[member.name] = n
                continue
            if rows is None:
                good = valid_rows(out)
                proba[:, j] = out
                ok[:, j] = good
            else:
                good = np.zeros(n, dtype=bool)
                if rows.size:
                    good[rows] = valid_rows(out)
                    proba[rows, j] = out
                ok[:, j] = good
            if not good.all():
                proba[~good, j] = np.nan  # nothing downstream may read a spoiled row
                bad = int((~good).sum())
                result.failed_rows[member.name] = bad
                result.failed[member.name] = (why if rows is not None else
                                              f"failed: invalid output (non-finite, outside [0, 1] or not summing to 1) on {bad} of {n} rows")
        return result

    def _run_member(self, member: Member, X: Matrix, c: int) -> tuple[np.ndarray | None, np.ndarray, str]:
        """One member on the batch, isolation retries included (may run on the member's thread).

        Returns
        -------
        rows : ndarray of int or None
            Rows with an output (None: every row, ``out`` has n rows).
        out : ndarray of shape (k, n_classes)
        why : str
            What failed ("" when the call succeeded).
        """
        # numpy warnings of a member (overflow on a poison row...) are not news: the rows they
        # spoil are found and dropped by the caller, and the run report says so. errstate is
        # per thread, hence here.
        with np.errstate(all="ignore"):
            try:
                return None, self._call(member, X, c), ""
            except _CallFailed as exc:
                if exc.shape:  # a member bug, not a row's fault: no retries
                    return np.empty(0, dtype=np.int64), np.empty((0, c)), f"failed: {exc}"
                finite_rows = np.asarray(np.isfinite(X).all(axis=1))
                return self._isolate(member, X, c, finite_rows, str(exc))

    def _call(self, member: Member, X: Matrix, c: int) -> np.ndarray:
        """One ``predict_proba`` call, shape-checked; raises :class:`_CallFailed`."""
        try:
            out = np.asarray(member.estimator.predict_proba(X), dtype=np.float64)
        except Exception as exc:  # any member bug must not fail the batch
            raise _CallFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if out.shape != (X.shape[0], c):
            raise _CallFailed(f"output shape {out.shape}, expected {(X.shape[0], c)}", shape=True)
        return out

    def _isolate(
        self, member: Member, X: Matrix, c: int, finite_rows: np.ndarray, first: str
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Find the rows a member that raised on the whole batch can score.

        Returns
        -------
        rows : ndarray of shape (k,), int
            Batch rows with an output (possibly none).
        out : ndarray of shape (k, n_classes)
        reason : str
            What failed, for the run report.
        """
        n = X.shape[0]
        budget = ISOLATION_CALLS
        if not finite_rows.all():
            # The common poison: non-finite inputs, rejected by sklearn's input check for the
            # whole call. One retry without those rows.
            clean = np.flatnonzero(finite_rows)
            budget -= 1
            try:
                out = self._call(member, X[clean], c) if clean.size else np.empty((0, c))
                return clean, out, f"failed: {first} (on {n - clean.size} rows with non-finite inputs)"
            except _CallFailed:
                pass
        # Bisection: a segment that fails is split in two and each part tried again, down to
        # single rows or until the budget (two calls per halving: room for a few poison rows;
        # a member that fails everywhere costs about three times its batch) is spent.
        budget = min(budget, 4 * int(np.ceil(np.log2(max(n, 2)))) + 4)
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        failing = [np.arange(n)] if n > 1 else []
        while failing and budget > 0:
            seg = failing.pop()
            for part in np.array_split(seg, 2):
                if budget <= 0:
                    break
                budget -= 1
                try:
                    pieces.append((part, self._call(member, X[part], c)))
                except _CallFailed:
                    if part.size > 1:
                        failing.append(part)
        if not pieces:
            return np.empty(0, dtype=np.int64), np.empty((0, c)), f"failed: {first}"
        rows = np.concatenate([r for r, _ in pieces])
        return rows, np.concatenate([o for _, o in pieces]), f"failed: {first} (isolated to {n - rows.size} of {n} rows)"
