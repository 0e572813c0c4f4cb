"""A live worker's /metrics, /healthz and /readyz: the named series move as events flow."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request

import orjson
import pytest

from .conftest import Topics, collect, event, produce

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _value(text: str, series: str) -> float:
    total = 0.0
    for m in re.finditer(rf"^{re.escape(series)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M):
        total += float(m.group(1))
    return total


def _wait(pred, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.3)
    return False


def test_metrics_and_probes_of_a_live_worker(servers, topics: Topics, start_worker, feature_rows) -> None:
    port = _free_port()
    worker = start_worker("--metrics-port", str(port), "--batch-size", "50")
    assert _wait(lambda: _get(port, "/healthz")[0] == 200), "healthz never answered"
    assert _wait(lambda: _get(port, "/readyz")[0] == 200), _get(port, "/readyz")
    ready = orjson.loads(_get(port, "/readyz")[1])
    assert ready["model_loaded"] and ready["assigned"] == 3 and ready["broker"]
    before = _get(port, "/metrics")[1].decode()
    assert _value(before, "se_events_consumed_total") == 0
    assert 'se_build_info{' in before and "ensemble=" in before

    produce(servers["bootstrap"], topics.features, [event(i, feature_rows[i % 50], prefix="m") for i in range(200)]
            + [(b"k", b"not json")])
    collect(servers["bootstrap"], topics.scores, lambda d: len({x["event_id"] for x in d}) >= 200)
    # the scores are acknowledged before the batch is counted; give the last batch a moment
    assert _wait(lambda: _value(_get(port, "/metrics")[1].decode(), "se_events_scored_total") >= 200, 20)
    text = _get(port, "/metrics")[1].decode()
    assert _value(text, "se_events_consumed_total") == 201
    assert _value(text, 'se_events_dead_lettered_total{reason="invalid_json"}') == 1
    assert _value(text, "se_batch_size_count") >= 4
    assert _value(text, "se_batch_scoring_seconds_count") >= 4
    assert _value(text, "se_end_to_end_latency_seconds_count") == 201
    assert _value(text, "se_cache_hits_total") + _value(text, "se_cache_misses_total") == 200
    assert re.search(r'^se_selection\{selection_id="[^"]+"\} 1\.0$', text, re.M)
    for series in ("se_member_latency_seconds", "se_member_failures_total", "se_member_breaker_state",
                   "se_reselections_total", "se_events_degraded_total", "se_experiment_arm_events_total"):
        assert f"# TYPE {series.removesuffix('_total')}" in text, series
    # consumer lag per partition comes from librdkafka's statistics (every 5 s)
    assert _wait(lambda: "se_consumer_lag{" in _get(port, "/metrics")[1].decode(), 15)
    assert worker.terminate() == 0
