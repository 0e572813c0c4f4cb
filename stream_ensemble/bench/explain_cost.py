"""Cost of the explanation levels: scoring time per event at ``none``, ``summary`` and ``full``.

``stream-ensemble bench explain-cost`` loads a trained ensemble from the registry (the demo's,
by default), encodes a batch of its held-out rows, and times :meth:`ServingEnsemble.score` on
that batch at each explanation level, in process (no Kafka, no Redis: the figure is the
engine's own cost). The best of ``repeats`` runs is kept, since the machines are shared and
noisy; the ratios between levels are the meaningful figures.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from stream_ensemble.core.registry import Registry

LEVELS: tuple[str, ...] = ("none", "summary", "full")


def run(registry: Registry, ensemble: str = "default", batch: int = 500, repeats: int = 3) -> dict[str, Any]:
    """Time one batch at every explanation level.

    Parameters
    ----------
    registry : Registry
        Holds the ensemble; it must have been trained on the bundled dataset (``train``'s
        default), whose held-out rows are replayed.
    ensemble : str, default="default"
    batch : int, default=500
        Events per scored batch (held-out rows, cycled when there are fewer).
    repeats : int, default=3

    Returns
    -------
    dict
        ``ensemble``, ``strategy``, ``members_run``, ``n_features``, ``batch``, ``repeats`` and
        ``us_per_event`` per level (best of ``repeats``), plus ``full_over_summary``.

    Raises
    ------
    ConfigError
        The ensemble was not trained on the bundled dataset.
    """
    from stream_ensemble.core.data import load_bundled
    from stream_ensemble.core.training import holdout_rows
    from stream_ensemble.errors import ConfigError
    from stream_ensemble.serving.loading import load_serving_ensemble

    manifest = registry.manifest("ensembles", ensemble)
    if manifest.get("dataset") != "breast_cancer":
        raise ConfigError("explain-cost replays the bundled dataset; train the ensemble on it first")
    ens = load_serving_ensemble(registry, ensemble)
    rows = holdout_rows(registry, ensemble)
    records = load_bundled().records(rows)
    records = [records[i % len(records)] for i in range(batch)]
    X = ens.encoder.transform_records(records).X
    healthy = np.ones(len(ens.member_tags), dtype=bool)
    members_run = int(ens.strategy.required_members(healthy).sum())
    timings: dict[str, float] = {}
    for level in LEVELS:
        ens.score(X, healthy, level)  # warm-up: selection cache, lazy imports
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            ens.score(X, healthy, level)
            best = min(best, time.perf_counter() - t0)
        timings[level] = best / X.shape[0] * 1e6
    return {
        "ensemble": ens.tag,
        "strategy": manifest.get("strategy"),
        "members_run": members_run,
        "n_features": int(X.shape[1]),
        "batch": int(X.shape[0]),
        "repeats": repeats,
        "us_per_event": timings,
        "full_over_summary": timings["full"] / timings["summary"],
    }


def render_markdown(result: dict[str, Any]) -> str:
    """A one-table Markdown report of :func:`run`'s result."""
    lines = [
        f"Explanation cost, `{result['ensemble']}` ({result['strategy']}, {result['members_run']} members run, "
        f"{result['n_features']} encoded features), batch of {result['batch']}, best of {result['repeats']}:",
        "",
        "| level | µs per event |",
        "|---|---|",
    ]
    lines += [f"| `{lv}` | {result['us_per_event'][lv]:.1f} |" for lv in LEVELS]
    return "\n".join(lines) + "\n"
