"""Every registered strategy is discovered and put through the same checks."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from stream_ensemble.core.confidence import NO_EXCLUSION
from stream_ensemble.core.data import load_bundled, stratified_split
from stream_ensemble.core.members.families import default_pool
from stream_ensemble.core.members.oof import MemberFit, fit_members, predict_members
from stream_ensemble.core.strategies import STRATEGIES, EnsembleStrategy, StrategyName, fit_strategy

Data = tuple[MemberFit, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def data() -> Data:
    ds = load_bundled()
    X = np.column_stack([ds.columns[c] for c in ds.numeric])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    fit, test = stratified_split(ds.y, (0.7, 0.3), 1)
    pool = {s.model_id: s for s in default_pool()}
    specs = [pool["logreg"], pool["naive_bayes"], pool["decision_tree"], pool["knn"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = fit_members(specs, X[fit], ds.y[fit], n_folds=3)
    return mf, X[fit], ds.y[fit], X[test], predict_members(mf.estimators, X[test])


@pytest.fixture(scope="module")
def fitted(data: Data) -> dict[StrategyName, EnsembleStrategy]:
    mf, X_fit, y_fit = data[0], data[1], data[2]
    return {name: fit_strategy(name, mf.P_oof, y_fit, costs=mf.costs_ms_per_1k, X_oof=X_fit,
                               member_names=mf.names)
            for name in STRATEGIES}


def _check_output(st: EnsembleStrategy, P: np.ndarray, avail: np.ndarray, X: np.ndarray,
                  healthy: np.ndarray) -> np.ndarray:
    proba = st.predict_proba(P, avail, X)
    assert proba.shape == (P.shape[0], P.shape[2])
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    used = st.used_mask(avail, X)
    assert used.shape == avail.shape and not np.any(used & ~avail)
    assert not np.any(used[:, ~st.required_members(healthy)])
    codes = st.exclusion_reasons(healthy, avail, X)
    assert np.array_equal(codes == NO_EXCLUSION, used)
    contrib = st.contributions(P, avail, X)
    np.testing.assert_allclose(contrib.probability(), proba[:, 1], atol=1e-8)
    assert np.all(contrib.values[~used] == 0.0)
    return proba


@pytest.mark.parametrize("name", list(STRATEGIES), ids=lambda s: s.value)
def test_strategy_contract(name: StrategyName, data: Data, fitted: dict[StrategyName, EnsembleStrategy]) -> None:
    mf, _, _, X, P = data
    st = fitted[name]
    m = mf.n_models
    healthy = np.ones(m, bool)
    req = st.required_members(healthy)
    assert req.shape == (m,) and req.any()
    avail = np.broadcast_to(req, P.shape[:2]).copy()
    P_run = np.where(avail[:, :, None], P, np.nan)  # unselected members never computed
    proba = _check_output(st, P_run, avail, X, healthy)

    # Some rows lose a member (exception / NaN); one row loses everything -> prior.
    avail_f = avail.copy()
    avail_f[::4, int(np.flatnonzero(req)[0])] = False
    avail_f[1] = False
    out = _check_output(st, np.where(avail_f[:, :, None], P_run, np.nan), avail_f, X, healthy)
    np.testing.assert_allclose(out[1], st.class_prior_)

    # The most-used member goes down: a new selection without it, still valid output.
    down = int(np.argmax(st.used_mask(avail, X).sum(axis=0)))
    h2 = healthy.copy()
    h2[down] = False
    req2 = st.required_members(h2)
    assert not req2[down] and req2.any()
    avail2 = np.broadcast_to(req2, P.shape[:2]).copy()
    _check_output(st, np.where(avail2[:, :, None], P, np.nan), avail2, X, h2)

    # Model-order invariance of the used set is not promised (B&B ties by index); pickle and
    # clone are.
    again = pickle.loads(pickle.dumps(st))
    np.testing.assert_array_equal(again.predict_proba(P_run, avail, X), proba)
    cloned = clone(st)
    assert cloned.get_params() == st.get_params() and not hasattr(cloned, "P_oof_")
