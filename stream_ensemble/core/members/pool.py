"""The model pool: fitted members with a shared class order, run once per batch.

Members are isolated: an exception, a wrong shape or non-finite output drops that member
for the affected rows (recorded in the run report), never the batch. A member that takes
longer than its deadline is reported as timed out; sklearn calls cannot be pre-empted, so
the result of a late member is discarded for this batch rather than waited for twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    """

    proba: Proba
    ok: Mask
    failed: dict[str, str] = field(default_factory=dict)
    timed_out: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)


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

    def proba(self, X: Matrix, run: np.ndarray, deadline_s: float | None = None) -> PoolRun:
        """Run each member in ``run`` once on the whole batch.

        Parameters
        ----------
        X : ndarray of shape (n_events, n_features)
        run : ndarray of shape (n_models,), bool
            Members to run; the others stay NaN / not ok.
        deadline_s : float, optional
            Per-member wall-time limit; a member over it is reported ``timed_out`` and its
            output discarded for this batch.

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
            try:
                out = np.asarray(member.estimator.predict_proba(X), dtype=np.float64)
            except Exception as exc:  # any member bug must not fail the batch
                result.failed[member.name] = f"failed: {type(exc).__name__}: {exc}"[:300]
                continue
            finally:
                result.seconds[member.name] = time.perf_counter() - t0
            if out.shape != (n, c):
                result.failed[member.name] = f"failed: output shape {out.shape}, expected {(n, c)}"
                continue
            if deadline_s is not None and result.seconds[member.name] > deadline_s:
                result.timed_out.add(member.name)
                result.failed[member.name] = f"timed_out: {result.seconds[member.name]:.3f}s > {deadline_s:.3f}s"
                continue
            finite = np.isfinite(out).all(axis=1)
            proba[:, j] = out
            ok[:, j] = finite
            if not finite.all():
                result.failed[member.name] = f"failed: non-finite output on {int((~finite).sum())} rows"
        return result
