"""Fit pool members and collect their out-of-fold (OOF) predictions.

Everything downstream of the members -- selection, weights, stacking meta-learners -- is fit on
the OOF tensor: each row is predicted by a clone of the member that never saw that row, so a
member that memorises its training data (1-NN, deep trees) is judged on what it does on new
rows, not on the rows it memorised. The members that are served are refit on all the rows.

Every fit and predict runs under ``threadpool_limits(1)``: library-default threading made fits
10-100x slower and timings swing 10x on the small shared machines this runs on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.core.members.flat_forest import served_form
from stream_ensemble.errors import ConfigError, ModelPoolError
from stream_ensemble.types import Labels, Mask, Matrix, Proba

FloatArray = npt.NDArray[np.float64]

#: Rows in the block timed for the per-member predict cost.
TIMING_ROWS = 2000
#: Repeats of the timing; the best is kept (the least disturbed by other processes).
TIMING_REPEATS = 3


@dataclass(frozen=True, eq=False)
class MemberFit:
    """Fitted pool members and their out-of-fold predictions.

    Attributes
    ----------
    names : list of str
        Member ids, in column order of ``P_oof`` (members that failed are not listed).
    families : list of str
        Architecture family per member.
    estimators : list of estimator
        Each member refit on all of ``X_fit``.
    P_oof : ndarray of shape (n_fit, n_models, n_classes)
        Out-of-fold class probabilities (float64).
    costs_ms_per_1k : ndarray of shape (n_models,)
        Measured single-thread time of one ``predict_proba`` call on 1,000 rows (the per-call
        term plus 1,000 x the per-row term), milliseconds, as served (``served_form``).
    fit_seconds : ndarray of shape (n_models,)
        Wall time of the cross-validated fits plus the final refit, seconds.
    n_classes : int
        Number of classes (labels are ``0..n_classes-1``).
    failed : dict of str to str
        Member id -> reason, for members dropped because fitting or predicting raised.
    call_ms : ndarray of shape (n_models,)
        The per-call term alone: one ``predict_proba`` call on one row, milliseconds.
    """

    names: list[str]
    families: list[str]
    estimators: list[Any]
    P_oof: Proba
    costs_ms_per_1k: FloatArray
    fit_seconds: FloatArray
    n_classes: int
    failed: dict[str, str] = field(default_factory=dict)
    call_ms: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_models(self) -> int:
        """Number of members that fitted."""
        return len(self.names)


def _proba_columns(est: Any, X: Matrix, n_classes: int) -> FloatArray:
    """``predict_proba`` mapped onto class indices ``0..n_classes-1``, shape (n, n_classes).

    A member fit on a fold that lacked a class has fewer columns; the missing class gets 0.
    """
    raw = np.asarray(est.predict_proba(X), dtype=np.float64)
    classes = np.asarray(est.classes_).astype(np.int64)
    out = np.zeros((X.shape[0], n_classes))
    out[:, classes] = raw
    if not np.all(np.isfinite(out)):
        raise ModelPoolError("predict_proba returned NaN or inf")
    return out


def _timing_block(X: Matrix) -> Matrix:
    reps = -(-TIMING_ROWS // max(X.shape[0], 1))
    return np.ascontiguousarray(np.tile(X, (reps, 1))[:TIMING_ROWS])


def _time_predict(est: Any, block: Matrix) -> tuple[float, float]:
    """What one ``predict_proba`` call costs: (ms per call, ms of a call on 1,000 rows).

    Timed as served (:func:`served_form`) on one row (the per-call term: validation, dispatch,
    per-tree overhead) and on the block (the per-row term); the cost of a 1,000-row call is
    per-call + 1,000 x per-row, so selection under ``--budget-ms`` sees members whose fixed
    cost dominates a batch, which a per-row figure hides.
    """
    served = served_form(est)

    def best(rows: Matrix) -> float:
        b = np.inf
        for _ in range(TIMING_REPEATS):
            t0 = time.perf_counter()
            served.predict_proba(rows)
            b = min(b, time.perf_counter() - t0)
        return float(b * 1000.0)

    call_ms = best(block[:1])
    per_row = max(best(block) - call_ms, 0.0) / max(block.shape[0] - 1, 1)
    return call_ms, call_ms + 1000.0 * per_row


def _validate(X_fit: Any, y_fit: Any, n_folds: int) -> tuple[Matrix, Labels, int]:
    X = np.asarray(X_fit, dtype=np.float64)
    y = np.asarray(y_fit)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ConfigError(f"X_fit must be (n, d) and y_fit (n,), got {X.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ConfigError("y_fit must hold integer class indices 0..n_classes-1")
    if n_folds < 2:
        raise ConfigError(f"n_folds must be >= 2, got {n_folds}")
    counts = np.bincount(y.astype(np.int64))
    if counts.size < 2 or counts.min() < n_folds:
        raise ConfigError(
            f"every class needs at least n_folds={n_folds} rows for stratified OOF; "
            f"class counts are {counts.tolist()}")
    return X, y.astype(np.int64), int(counts.size)


def fit_members(
    specs: Sequence[ModelSpec],
    X_fit: Matrix,
    y_fit: Labels,
    *,
    n_folds: int = 5,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> MemberFit:
    """Cross-validate every member for OOF predictions, then refit it on all rows.

    Parameters
    ----------
    specs : sequence of ModelSpec
        Unfitted members; ``model_id`` must be unique.
    X_fit : ndarray of shape (n_fit, n_features)
        Encoded features.
    y_fit : ndarray of int, shape (n_fit,)
        Class indices ``0..n_classes-1``; every class needs at least ``n_folds`` rows.
    n_folds : int, default=5
        Stratified folds (shuffled with ``random_state``; the same folds for every member, so
        OOF columns are comparable).
    random_state : int, default=0
        Seed of the fold shuffle.
    progress : callable, optional
        Called with a short message as each member starts.

    Returns
    -------
    MemberFit
        Members that fitted, in ``specs`` order; the others are in ``failed`` with a reason.

    Raises
    ------
    ConfigError
        On bad shapes, duplicate ids, too few rows per class or ``n_folds < 2``.
    ModelPoolError
        When no member could be fitted.
    """
    X, y, n_classes = _validate(X_fit, y_fit, n_folds)
    ids = [s.model_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"duplicate model ids in the pool: {sorted(ids)}")
    folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=random_state).split(X, y))
    block = _timing_block(X)
    names: list[str] = []
    families: list[str] = []
    estimators: list[Any] = []
    columns: list[FloatArray] = []
    costs: list[float] = []
    calls: list[float] = []
    seconds: list[float] = []
    failed: dict[str, str] = {}
    with threadpool_limits(1):
        for i, spec in enumerate(specs):
            if progress is not None:
                progress(f"fitting {spec.model_id} ({i + 1}/{len(specs)})")
            t0 = time.perf_counter()
            try:
                oof = np.full((X.shape[0], n_classes), np.nan)
                for train, test in folds:
                    est = clone(spec.estimator).fit(X[train], y[train])
                    oof[test] = _proba_columns(est, X[test], n_classes)
                final = clone(spec.estimator).fit(X, y)
                _proba_columns(final, X[:1], n_classes)
            except Exception as exc:  # noqa: BLE001 -- any member failure drops that member
                failed[spec.model_id] = f"{type(exc).__name__}: {exc}"
                continue
            seconds.append(time.perf_counter() - t0)
            call_ms, cost = _time_predict(final, block)
            costs.append(cost)
            calls.append(call_ms)
            names.append(spec.model_id)
            families.append(spec.family)
            estimators.append(final)
            columns.append(oof)
    if not names:
        raise ModelPoolError(f"no member could be fitted: {failed}")
    return MemberFit(
        names=names,
        families=families,
        estimators=estimators,
        P_oof=np.stack(columns, axis=1),
        costs_ms_per_1k=np.asarray(costs),
        fit_seconds=np.asarray(seconds),
        n_classes=n_classes,
        failed=failed,
        call_ms=np.asarray(calls),
    )


def predict_members(
    estimators: Sequence[Any],
    X: Matrix,
    *,
    n_classes: int | None = None,
    run: Mask | None = None,
) -> Proba:
    """Run each member once on the whole batch.

    Parameters
    ----------
    estimators : sequence of fitted classifiers
        In member (column) order.
    X : ndarray of shape (n_events, n_features)
    n_classes : int, optional
        Number of classes; default ``len(estimators[0].classes_)``.
    run : ndarray of bool, shape (n_models,), optional
        Members to run; the others are left ``NaN`` (never computed). Default: all.

    Returns
    -------
    ndarray of shape (n_events, n_models, n_classes)
        Member probabilities; ``NaN`` for members not run.

    Raises
    ------
    ConfigError
        On a ``run`` vector of the wrong length or an empty pool.
    ModelPoolError
        When a member's ``predict_proba`` raises or returns non-finite values.
    """
    if not estimators:
        raise ConfigError("no estimators to run")
    Xa = np.asarray(X, dtype=np.float64)
    c = int(n_classes if n_classes is not None else len(estimators[0].classes_))
    todo = np.ones(len(estimators), bool) if run is None else np.asarray(run, dtype=bool)
    if todo.shape != (len(estimators),):
        raise ConfigError(f"run has shape {todo.shape}, expected ({len(estimators)},)")
    out = np.full((Xa.shape[0], len(estimators), c), np.nan)
    with threadpool_limits(1):
        for j in np.flatnonzero(todo):
            try:
                out[:, j] = _proba_columns(estimators[int(j)], Xa, c)
            except Exception as exc:  # noqa: BLE001 -- re-raised with the member index
                raise ModelPoolError(f"member {j} failed to predict: {exc}") from exc
    return out


def measure_cost(est: Any, X: Matrix) -> tuple[float, float]:
    """A fitted member's cost as the registry records it: (``call_ms``, ``cost_ms_per_1k``).

    Timed exactly as :func:`fit_members` times every member (served form, one thread, best of
    :data:`TIMING_REPEATS`, a :data:`TIMING_ROWS`-row block tiled from ``X``).

    Parameters
    ----------
    est : fitted classifier
    X : ndarray of shape (n, n_features)
        Rows to tile into the timing block.

    Returns
    -------
    call_ms : float
        One call on one row, milliseconds.
    cost_ms_per_1k : float
        One call on 1,000 rows, milliseconds.
    """
    with threadpool_limits(1):
        return _time_predict(est, _timing_block(np.asarray(X, dtype=np.float64)))
