"""A small, budgeted hyperparameter search per pool member, at training time.

A :class:`~stream_ensemble.core.members.families.ModelSpec` may list candidate
hyperparameters (``search``). Before the out-of-fold fits, :func:`tune_specs` fits each
candidate once on a stratified inner split of the ``fit`` rows (``1 - holdout`` of them) and
scores its log loss on the rest; the candidate with the lowest loss replaces the spec's
estimator. Only ``fit`` rows are used -- never the calibration part or any test rows -- so
the choice is validation-only, like everything else ``build`` learns.

Budget: candidates are tried round-robin across members (every member's first candidate,
then every second one, ...), and once ``budget_s`` seconds have passed no new candidate is
started (every member's first candidate always runs), so even a tight budget tunes every member a little and a loose one costs only the
few configurations listed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from stream_ensemble.core.members.families import ModelSpec
from stream_ensemble.errors import ConfigError
from stream_ensemble.types import Labels, Matrix


@dataclass(frozen=True)
class SearchReport:
    """What the search tried for one member.

    Attributes
    ----------
    model_id : str
    chosen : int
        Index of the kept candidate in ``spec.search``.
    params : dict
        Its hyperparameters.
    val_log_loss : list of float or None
        Validation log loss per candidate (``None``: not tried, budget spent, or it failed).
    seconds : float
        Wall time of the search for this member.
    """

    model_id: str
    chosen: int
    params: dict[str, Any]
    val_log_loss: list[float | None]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for manifests and benchmark reports)."""
        return {"chosen": self.chosen, "params": dict(self.params), "val_log_loss": list(self.val_log_loss),
                "seconds": self.seconds}


def _log_loss(est: Any, X: Matrix, y: Labels) -> float:
    raw = np.asarray(est.predict_proba(X), dtype=np.float64)
    col = np.searchsorted(np.asarray(est.classes_), y)
    col = np.clip(col, 0, raw.shape[1] - 1)
    hit = np.asarray(est.classes_)[col] == y
    p = np.where(hit, raw[np.arange(y.size), col], 0.0)
    loss = float(-np.mean(np.log(np.clip(p, 1e-15, 1.0))))
    if not np.isfinite(loss):
        raise ValueError("non-finite validation log loss")
    return loss


def tune_specs(
    specs: Sequence[ModelSpec],
    X_fit: Matrix,
    y_fit: Labels,
    *,
    budget_s: float = float("inf"),
    holdout: float = 0.25,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[ModelSpec], dict[str, SearchReport]]:
    """Pick each searchable member's hyperparameters on an inner validation split.

    Parameters
    ----------
    specs : sequence of ModelSpec
        Members; those with an empty ``search`` are returned unchanged.
    X_fit : ndarray of shape (n_fit, n_features)
    y_fit : ndarray of int, shape (n_fit,)
    budget_s : float, default=inf
        No candidate is started after this many seconds (module docstring); must be >= 0.
    holdout : float, default=0.25
        Share of ``fit`` rows the candidates are scored on.
    random_state : int, default=0
        Seed of the inner split.
    progress : callable, optional
        Called with a short message per candidate.

    Returns
    -------
    specs : list of ModelSpec
        Same order; tuned members carry the chosen hyperparameters (and no ``search``).
    reports : dict of str to SearchReport
        Per tuned member.

    Raises
    ------
    ConfigError
        A negative budget or a ``holdout`` outside (0, 0.5].
    """
    if not budget_s >= 0:
        raise ConfigError(f"search budget must be >= 0 seconds, got {budget_s}")
    if not 0.0 < holdout <= 0.5:
        raise ConfigError(f"holdout must be in (0, 0.5], got {holdout}")
    X = np.asarray(X_fit, dtype=np.float64)
    y = np.asarray(y_fit).astype(np.int64)
    todo = [i for i, s in enumerate(specs) if s.search]
    if not todo:
        return list(specs), {}
    counts = np.bincount(y)
    strat = y if counts.min() >= 2 else None
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=holdout, random_state=random_state, stratify=strat)
    losses: dict[int, list[float | None]] = {i: [None] * len(specs[i].search) for i in todo}
    seconds = dict.fromkeys(todo, 0.0)
    t0 = time.perf_counter()
    with threadpool_limits(1):
        for k in range(max(len(specs[i].search) for i in todo)):
            for i in todo:
                spec = specs[i]
                if k >= len(spec.search) or (k > 0 and time.perf_counter() - t0 > budget_s):
                    continue
                if progress is not None:
                    progress(f"search {spec.model_id} {k + 1}/{len(spec.search)}")
                t1 = time.perf_counter()
                try:
                    est = clone(spec.estimator).set_params(**spec.search[k]).fit(Xa, ya)
                    losses[i][k] = _log_loss(est, Xb, yb)
                except Exception:  # noqa: BLE001 -- a failing candidate is just not chosen
                    losses[i][k] = None
                seconds[i] += time.perf_counter() - t1
    out = list(specs)
    reports: dict[str, SearchReport] = {}
    for i in todo:
        spec = specs[i]
        tried = [(v, k) for k, v in enumerate(losses[i]) if v is not None]
        if not tried:  # nothing tried or all failed: the estimator as given, without a search
            out[i] = replace(spec, search=())
            continue
        best = min(tried)[1]
        params = dict(spec.search[best])
        out[i] = replace(spec, estimator=clone(spec.estimator).set_params(**params), search=())
        reports[spec.model_id] = SearchReport(spec.model_id, best, params, losses[i], seconds[i])
    return out, reports
