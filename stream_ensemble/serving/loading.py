"""Loading a served ensemble from the registry: every artifact verified, the pieces wired."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_ensemble.core.confidence import DEFAULT_CONFIDENCE
from stream_ensemble.core.members.flat_forest import served_form
from stream_ensemble.core.members.pool import Member, ModelPool
from stream_ensemble.core.registry import Registry
from stream_ensemble.errors import ModelPoolError
from stream_ensemble.serving.ensemble import ServingEnsemble


def load_serving_ensemble(registry: Registry, name: str = "default", version: int | None = None) -> ServingEnsemble:
    """Load an ensemble and its member versions, verifying every sha256.

    Raises
    ------
    IntegrityError
        An artifact was modified after it was written.
    ModelPoolError
        The ensemble or a member version is missing.
    """
    payload, manifest = registry.load("ensembles", name, version)
    members = []
    for tag in manifest["members"]:
        mname, _, v = tag.rpartition("@v")
        est, mm = registry.load("models", mname, int(v))
        # Forests are served flattened (same probabilities, no per-tree checks per call).
        members.append(Member(mname, int(v), str(mm["family"]), served_form(est), float(mm["cost_ms_per_1k"])))
    pool = ModelPool(members, classes=np.arange(len(payload["class_names"])))
    strategy = payload["strategy"]
    if list(strategy.member_names) != pool.names:
        raise ModelPoolError(f"strategy members {strategy.member_names} do not match pool {pool.names}")
    measure = payload.get("confidence_measure") or str(DEFAULT_CONFIDENCE.value)
    return ServingEnsemble(
        name, int(manifest["version"]), payload["encoder"], pool, strategy,
        payload["calibrator"], payload["conformal"], list(payload["class_names"]), measure,
    )


def load_with_smoke_rows(registry: Registry, name: str, version: int | None = None) -> tuple[ServingEnsemble, list[dict[str, Any]]]:
    """:func:`load_serving_ensemble` plus the sample feature rows stored in its manifest.

    The rows (``smoke_rows``, raw feature dicts written by training) are what hot deploy
    smoke-scores before a version may serve; registries written before they were stored
    give an empty list (the validator then scores median rows).
    """
    ens = load_serving_ensemble(registry, name, version)
    rows = registry.manifest("ensembles", name, ens.version).get("smoke_rows") or []
    return ens, [dict(r) for r in rows]
