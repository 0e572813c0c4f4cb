"""Prometheus metrics and the liveness/readiness probes of one worker process.

:class:`WorkerMetrics` owns the series (a private ``CollectorRegistry``, so tests and several
workers in one process never collide) and the hooks the rest of the code calls; the
:class:`ProbeServer` serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``--metrics-port``
(127.0.0.1 unless ``--metrics-host`` says otherwise).

Hooks other features call (series exist from the start, at 0 until the feature lands):
``member(name, seconds, failed_reason)``, ``breaker(name, state)``, ``degraded(reason, n)``,
``arm(experiment, arm, n)``, ``selection(selection_id)``, ``deploy_swap(version)``,
``deploy_refused(version)``.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stream_ensemble.types import BatchResult, RawMessage

log = logging.getLogger("stream_ensemble.metrics")
# one `*_created` timestamp series per counter doubles the exposition for nothing a dashboard uses
disable_created_metrics()  # type: ignore[no-untyped-call]

BREAKER_STATES = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """Every series the worker exposes, and the state behind ``/healthz`` and ``/readyz``.

    Parameters
    ----------
    build : dict of str to str
        Labels of ``se_build_info`` (version, python, ensemble...).
    stall_s : float
        ``/healthz`` fails when the scoring loop has not ticked for this long.
    """

    def __init__(self, build: dict[str, str] | None = None, stall_s: float = 30.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter("se_events_consumed", "Feature events read from the input topic", registry=r)
        self.scored = Counter("se_events_scored", "Scored events produced (and acknowledged)", registry=r)
        self.dead_lettered = Counter("se_events_dead_lettered", "Events sent to the DLQ", ["reason"], registry=r)
        self.degraded_events = Counter("se_events_degraded", "Events scored in degraded mode", ["reason"], registry=r)
        self.cache_hits = Counter("se_cache_hits", "Prediction cache hits", registry=r)
        self.cache_misses = Counter("se_cache_misses", "Prediction cache misses", registry=r)
        self.batch_size = Histogram("se_batch_size", "Events per batch", buckets=_BATCH_BUCKETS, registry=r)
        self.scoring_seconds = Histogram("se_batch_scoring_seconds", "Engine time per batch (decode, cache, score)",
                                         buckets=_SECONDS_BUCKETS, registry=r)
        self.batch_seconds = Histogram("se_batch_seconds", "Whole batch: poll to commit", buckets=_SECONDS_BUCKETS, registry=r)
        self.e2e_seconds = Histogram("se_end_to_end_latency_seconds", "Producer timestamp of the input to its score's acknowledgement",
                                     buckets=_E2E_BUCKETS, registry=r)
        self.member_seconds = Histogram("se_member_latency_seconds", "Per-member predict time per batch", ["member"],
                                        buckets=_SECONDS_BUCKETS, registry=r)
        self.member_failures = Counter("se_member_failures", "Member failures", ["member", "reason"], registry=r)
        self.breaker_state = Gauge("se_member_breaker_state", "Circuit breaker: 0 closed, 0.5 half-open, 1 open", ["member"], registry=r)
        self.selection_info = Gauge("se_selection", "1 for the selection id in use", ["selection_id"], registry=r)
        self.reselections = Counter("se_reselections", "Changes of the selection in use", registry=r)
        self.consumer_lag = Gauge("se_consumer_lag", "Messages behind the partition end (librdkafka stats)", ["topic", "partition"], registry=r)
        self.arm_events = Counter("se_experiment_arm_events", "Events routed to each experiment arm", ["experiment", "arm"], registry=r)
        self.commit_failures = Counter("se_commit_failures", "Offset commits that failed (events re-delivered)", registry=r)
        self.deploy_swaps = Counter("se_deploy_swaps", "Hot swaps to a newly deployed ensemble version", ["version"], registry=r)
        self.deploy_refusals = Counter("se_deploy_refused", "Deployed versions refused by validation", ["version"], registry=r)
        self.info = Info("se_build", "Build and serving information", registry=r)
        self.info.info({"python": platform.python_version(), **(build or {})})
        self.stall_s = stall_s
        self._selection = ""
        self._last_tick = time.monotonic()
        self._assigned: set[tuple[str, int]] = set()
        self._broker_ok = False
        self.model_loaded = False
        self._lock = threading.Lock()
        # plain totals for the heartbeat (reading them back from prometheus objects is private API)
        self.totals = {"consumed": 0, "scored": 0, "dead_lettered": 0, "cache_hits": 0}
        self._lag: dict[str, int] = {}

    @property
    def current_selection(self) -> str:
        """The selection id of the last batch ("" before the first)."""
        return self._selection

    @property
    def assigned(self) -> set[tuple[str, int]]:
        """Partitions this worker owns now."""
        with self._lock:
            return set(self._assigned)

    def lag_by_partition(self) -> dict[str, int]:
        """Last known consumer lag, ``"topic[partition]" -> messages``."""
        return dict(self._lag)

    # -- hooks ---------------------------------------------------------------------------
    def tick(self) -> None:
        """The scoring loop is alive (called once per loop iteration)."""
        self._last_tick = time.monotonic()

    def batch(self, messages: Sequence[RawMessage], result: BatchResult, scoring_s: float, batch_s: float) -> None:
        """One batch went through: counts, sizes and times; called after its outputs were acknowledged."""
        t = self.totals
        t["consumed"] += len(messages)
        t["scored"] += len(result.scored)
        t["dead_lettered"] += len(result.dead_letters)
        t["cache_hits"] += result.cache_hits
        self.consumed.inc(len(messages))
        self.scored.inc(len(result.scored))
        for dead in result.dead_letters:
            self.dead_lettered.labels(dead.error_type).inc()
        self.cache_hits.inc(result.cache_hits)
        self.cache_misses.inc(result.cache_misses)
        for (experiment, arm), n in result.arms.items():
            self.arm(experiment, arm, n)
        for why, n in result.degraded.items():
            self.degraded(why, n)
        self.batch_size.observe(len(messages))
        self.scoring_seconds.observe(scoring_s)
        self.batch_seconds.observe(batch_s)
        now_ms = time.time() * 1000.0
        stamps = [m.produce_time_ms for m in messages if m.produce_time_ms is not None]
        if stamps:
            observe_many(self.e2e_seconds, np.maximum(now_ms - np.asarray(stamps, dtype=np.float64), 0.0) / 1000.0)
        self._broker_ok = True
        selection = getattr(result, "selection_id", "")
        if selection:
            self.selection(selection)

    def selection(self, selection_id: str) -> None:
        """The selection in use; a change counts as a re-selection and is logged once."""
        with self._lock:
            if selection_id == self._selection:
                return
            previous, self._selection = self._selection, selection_id
        if previous:
            self.selection_info.remove(previous)
            self.reselections.inc()
            log.info("selection changed to %s", selection_id, extra={"event": "selection", "selection_id": selection_id, "was": previous})
        self.selection_info.labels(selection_id).set(1)

    def member(self, name: str, seconds: float | None = None, failed_reason: str | None = None) -> None:
        """One member's run on one batch: its time and, if it failed, why (``failed``, ``timed_out``...)."""
        if seconds is not None:
            self.member_seconds.labels(name).observe(seconds)
        if failed_reason:
            self.member_failures.labels(name, failed_reason).inc()

    def breaker(self, name: str, state: str) -> None:
        """Circuit breaker state of a member: ``closed``, ``half_open`` or ``open``."""
        self.breaker_state.labels(name).set(BREAKER_STATES[state])

    def deploy_swap(self, version: str) -> None:
        """The worker now serves ``version`` (hot deploy)."""
        self.deploy_swaps.labels(version).inc()

    def deploy_refused(self, version: str) -> None:
        """A deployed ``version`` failed validation; the old one keeps serving."""
        self.deploy_refusals.labels(version).inc()

    def degraded(self, reason: str, n: int = 1) -> None:
        """``n`` events scored in degraded mode for ``reason``."""
        self.degraded_events.labels(reason).inc(n)

    def arm(self, experiment: str, arm: str, n: int = 1) -> None:
        """``n`` events routed to ``arm`` of ``experiment``."""
        self.arm_events.labels(experiment, arm).inc(n)

    def assignment(self, assigned: Sequence[tuple[str, int]] = (), revoked: Sequence[tuple[str, int]] = ()) -> None:
        """Partitions gained or lost in a rebalance."""
        with self._lock:
            self._assigned |= set(assigned)
            self._assigned -= set(revoked)
        for topic, partition in revoked:
            try:
                self.consumer_lag.remove(topic, str(partition))
            except KeyError:
                pass
            self._lag.pop(f"{topic}[{partition}]", None)

    def kafka_stats(self, stats_json: str) -> None:
        """librdkafka statistics (``stats_cb``): consumer lag per assigned partition."""
        try:
            stats = orjson.loads(stats_json)
        except orjson.JSONDecodeError:
            return
        self._broker_ok = any(b.get("state") == "UP" for b in stats.get("brokers", {}).values())
        for topic, t in stats.get("topics", {}).items():
            for pid, p in t.get("partitions", {}).items():
                if pid == "-1" or (topic, int(pid)) not in self._assigned:
                    continue
                lag = p.get("consumer_lag", -1)
                if lag >= 0:
                    self.consumer_lag.labels(topic, pid).set(lag)
                    self._lag[f"{topic}[{pid}]"] = int(lag)

    # -- probes --------------------------------------------------------------------------
    def healthz(self) -> tuple[bool, dict[str, Any]]:
        """Alive: the scoring loop ticked within ``stall_s``."""
        age = time.monotonic() - self._last_tick
        return age < self.stall_s, {"loop_age_s": round(age, 3)}

    def readyz(self) -> tuple[bool, dict[str, Any]]:
        """Ready: the model is loaded, partitions are assigned and the broker answers."""
        alive, detail = self.healthz()
        detail.update(model_loaded=self.model_loaded, assigned=len(self._assigned), broker=self._broker_ok)
        return alive and self.model_loaded and bool(self._assigned) and self._broker_ok, detail

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)


class ProbeServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over HTTP in a daemon thread."""

    def __init__(self, metrics: WorkerMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics.exposition()),
            "/healthz": lambda: _probe(metrics.healthz),
            "/readyz": lambda: _probe(metrics.readyz),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                route = routes.get(self.path.split("?", 1)[0])
                status, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="probe-server", daemon=True)

    def start(self) -> ProbeServer:
        """Serve in the background; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


def _probe(check: Callable[[], tuple[bool, dict[str, Any]]]) -> tuple[int, str, bytes]:
    ok, detail = check()
    return (200 if ok else 503), "application/json", orjson.dumps({"ok": ok, **detail}) + b"\n"


def observe_many(hist: Histogram, values: np.ndarray) -> None:
    """``hist.observe(v)`` for every value of ``values`` (shape (n,)), counted per bucket at once.

    Same counts and sum as the loop (each value goes to the first bucket whose upper bound
    is >= it, as ``Histogram.observe`` does); a batch of 1,000 latencies was 3% of the
    worker's time observed one by one. A histogram without the expected internals (another
    prometheus_client) takes the loop.
    """
    bounds = getattr(hist, "_upper_bounds", None)
    buckets = getattr(hist, "_buckets", None)
    total = getattr(hist, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values.tolist():
            hist.observe(v)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left"),
                         minlength=len(bounds))
    total.inc(float(values.sum()))
    for i, c in enumerate(counts[:len(bounds)].tolist()):
        if c:
            buckets[i].inc(c)
