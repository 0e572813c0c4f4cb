"""Under --log-format json every line the worker writes is one JSON object, poison included."""

from __future__ import annotations

import time

import orjson
import pytest

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration


def test_every_worker_line_is_json(servers, topics: Topics, start_worker, feature_rows, rclient) -> None:
    valid = [event(i, feature_rows[i], prefix="j") for i in range(40)]
    huge = event(99, {**feature_rows[0], "mean_radius": 1e308}, prefix="j-huge")  # overflows in numpy
    produce(servers["bootstrap"], topics.features, [*valid, huge, (b"k", b"not json")])
    worker = start_worker("--batch-size", "20")
    collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d} & {f"j-{i}" for i in range(40)}) >= 40)
    collect(servers["bootstrap"], topics.dlq, lambda d: len(d) >= 1, timeout=20)
    rclient.hset("se:health", "knn", "down")  # a health change is logged too (read within 2 s)
    time.sleep(2.2)
    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i], prefix="j2") for i in range(5)])
    collect(servers["bootstrap"], topics.scores, lambda d: any(x["event_id"].startswith("j2-") for x in d))
    assert worker.terminate() == 0
    lines = worker.log.read_text().splitlines()
    docs = []
    for line in lines:
        try:
            docs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"not JSON: {line[:300]}")
    events = {d.get("event") for d in docs}
    assert {"configuration", "assignment", "health"} <= events, events
    stopped = [d for d in docs if d["msg"].startswith("stopped")]
    assert stopped and stopped[-1]["stats"]["scored"] >= 40
