from __future__ import annotations

import numpy as np
import pytest

from stream_ensemble.core.data import load_bundled, stratified_split
from stream_ensemble.core.data.features import FeatureEncoder
from stream_ensemble.core.members.families import default_pool
from stream_ensemble.core.members.oof import fit_members
from stream_ensemble.core.members.pool import Member, ModelPool
from stream_ensemble.core.strategies import fit_strategy
from stream_ensemble.serving.ensemble import ServingEnsemble


@pytest.fixture(scope="session")
def small_ensemble() -> ServingEnsemble:
    """Three real members on the bundled dataset, soft-voting over a B&B selection."""
    data = load_bundled()
    fit_rows, _ = stratified_split(data.y, (0.7, 0.3), 0)
    fit = data.subset(fit_rows)
    enc = FeatureEncoder(data.numeric, data.categorical).fit(fit.columns)
    specs = [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes", "decision_tree"}]
    mf = fit_members(specs, enc.transform_columns(fit.columns), fit.y, n_folds=3)
    strategy = fit_strategy("soft_voting_all", mf.P_oof, fit.y, costs=mf.costs_ms_per_1k, member_names=mf.names)
    pool = ModelPool([Member(n, 1, f, e, float(c)) for n, f, e, c in zip(mf.names, mf.families, mf.estimators, mf.costs_ms_per_1k)], np.arange(2))
    return ServingEnsemble("test", 1, enc, pool, strategy, None, None, data.classes)


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return load_bundled().records()
