"""Scale check: select from a real pool of 120 scikit-learn models within 2 seconds.

Run ``OMP_NUM_THREADS=1 python -m stream_ensemble.bench.selection_scale [seed ...]`` from the
repository root (prints JSON; each seed is a different train/validation/test split and pool
seed). The data is spambase from ``$SE_DATA_DIR`` (default: the user cache, ``stream-ensemble datasets``); without it
the bundled breast-cancer dataset is used and a line on stderr says so.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from stream_ensemble.bench.data_files import default_data_dir
from stream_ensemble.core.members.families import large_pool
from stream_ensemble.core.selection import (
    SelectionCache,
    SelectionConstraints,
    caruana,
    ensemble_score,
    select,
)

SPAMBASE = default_data_dir() / "spambase.data"


def _load(random_state: int) -> tuple[np.ndarray, ...]:
    if SPAMBASE.exists():
        raw = np.loadtxt(SPAMBASE, delimiter=",", skiprows=1)  # first line numbers the columns
        X, y, name = raw[:, :-1], raw[:, -1].astype(np.int64), "spambase"
    else:  # pragma: no cover - the shared datasets are missing
        from sklearn.datasets import load_breast_cancer

        print(f"selection_scale: {SPAMBASE} not found; using the bundled breast-cancer dataset", file=sys.stderr)

        d = load_breast_cancer()
        X, y, name = d.data, (d.target == 0).astype(np.int64), "breast_cancer"
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=random_state)
    X_va, X_te, y_va, y_te = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=random_state)
    scaler = StandardScaler().fit(X_tr)
    return name, scaler.transform(X_tr), y_tr, scaler.transform(X_va), y_va, scaler.transform(X_te), y_te  # type: ignore[return-value]


def bnb_support(P: np.ndarray, y: np.ndarray, costs: np.ndarray, cons: SelectionConstraints) -> np.ndarray:
    """Caruana's support as a plain mask (a uniform-weight warm start)."""
    return caruana(P, y, n_iterations=cons.n_iterations, costs=costs, max_members=cons.max_members).mask


def run(n_models: int = 120, max_members: int = 10, time_limit_s: float = 2.0, random_state: int = 0) -> dict[str, Any]:
    """Build the pool, select with branch-and-bound and Caruana, score on the test split.

    Parameters
    ----------
    n_models : int
    max_members : int
    time_limit_s : float
        Limit for the whole ``select`` call (Caruana warm start included).
    random_state : int

    Returns
    -------
    dict
        Timings, node counts and validation / test log loss of every strategy.
    """
    with threadpool_limits(1):
        name, X_tr, y_tr, X_va, y_va, X_te, y_te = _load(random_state)
        specs = large_pool(n_models, random_state=random_state)
        t0 = time.perf_counter()
        P_va, P_te, costs = [], [], []
        for spec in specs:
            est = spec.estimator.fit(X_tr, y_tr)
            t = time.perf_counter()
            P_va.append(est.predict_proba(X_va))
            costs.append((time.perf_counter() - t) / X_va.shape[0] * 1000.0)
            P_te.append(est.predict_proba(X_te))
        fit_s = time.perf_counter() - t0
        Pv, Pt, c = np.stack(P_va, axis=1), np.stack(P_te, axis=1), np.asarray(costs)

        cons = SelectionConstraints(max_members=max_members, time_limit_s=time_limit_s)
        t = time.perf_counter()
        bnb = select(Pv, y_va, costs=c, constraints=cons)
        select_s = time.perf_counter() - t
        # Uniform subsets only: warm start from Caruana's support, not its weights.
        uni = select(Pv, y_va, costs=c, constraints=cons, incumbent=bnb_support(Pv, y_va, c, cons))
        car = caruana(Pv, y_va, n_iterations=cons.n_iterations, costs=c)
        car_k = caruana(Pv, y_va, n_iterations=cons.n_iterations, costs=c, max_members=max_members)

        singles = np.array([ensemble_score(Pv, y_va, np.eye(Pv.shape[1])[j]) for j in range(Pv.shape[1])])
        best = int(np.argmin(singles))
        uniform = np.ones(Pv.shape[1])

        # Re-selection after the most important selected member goes down.
        cache = SelectionCache.from_validation(Pv, y_va, c, cons)
        down = np.ones(Pv.shape[1], dtype=bool)
        down[int(np.argmax(bnb.weights))] = False
        t = time.perf_counter()
        res = cache.get(down)
        reselect_ms = (time.perf_counter() - t) * 1000.0
        t = time.perf_counter()
        cache.get(down)
        cached_us = (time.perf_counter() - t) * 1e6

    def both(w: np.ndarray) -> dict[str, float]:
        return {"val_log_loss": ensemble_score(Pv, y_va, w), "test_log_loss": ensemble_score(Pt, y_te, w)}

    return {
        "dataset": name,
        "rows": {"train": int(X_tr.shape[0]), "validation": int(X_va.shape[0]), "test": int(X_te.shape[0])},
        "n_models": int(Pv.shape[1]),
        "pool_fit_s": round(fit_s, 2),
        "max_members": max_members,
        "time_limit_s": time_limit_s,
        "select_s": round(select_s, 3),
        "bnb_nodes": bnb.nodes,
        "bnb_proven_optimal": bnb.proven_optimal,
        "bnb_bound": bnb.bound,
        "bnb_members": int(bnb.mask.sum()),
        "bnb_weights_nonuniform": bool(np.ptp(bnb.weights[bnb.mask]) > 0),
        "bnb_returned_caruana_incumbent": bnb.from_incumbent,
        "branch_and_bound": both(bnb.weights),
        "branch_and_bound_uniform_only": {**both(uni.weights), "members": int(uni.mask.sum()), "nodes": uni.nodes},
        "caruana": {**both(car.weights), "members": int(car.mask.sum()), "elapsed_s": round(car.elapsed_s, 3)},
        f"caruana_max{max_members}": {**both(car_k.weights), "members": int(car_k.mask.sum())},
        "best_single": {**both(np.eye(Pv.shape[1])[best]), "model": specs[best].model_id},
        "soft_voting_all": both(uniform),
        "reselect_after_member_down_ms": round(reselect_ms, 2),
        "reselect_val_log_loss": res.score,
        "cached_get_us": round(cached_us, 1),
    }


if __name__ == "__main__":
    seeds = [int(a) for a in sys.argv[1:]] or [0]
    out = [run(random_state=seed) for seed in seeds]
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
