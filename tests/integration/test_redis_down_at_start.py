"""Redis down when serve starts is advisory: the worker serves, flags the events, exits 0 on SIGTERM."""

from __future__ import annotations

import pytest

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration


def test_serve_without_redis_scores_and_flags_health_unknown(servers, topics: Topics, start_worker, feature_rows) -> None:
    n = 40
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i]) for i in range(n)])
    worker = start_worker("--redis-url", "redis://127.0.0.1:1/0")
    scores = collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= n, timeout=90)
    assert worker.proc.poll() is None, f"the worker exited: {worker.log.read_text()[-2000:]}"
    assert worker.terminate() == 0
    assert len({d["event_id"] for d in scores}) == n
    assert all(d["degraded"] is True and d["degraded_reason"] == "health_unknown" for d in scores)
    log = worker.log.read_text()
    assert log.count('"event":"redis"') == 1, "the outage is one line, not one per batch"
