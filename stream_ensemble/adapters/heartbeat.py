"""Worker heartbeats in Redis: what every live worker serves, its throughput and lag.

Each worker writes ``<prefix>:worker:{<group>}:<worker id>`` (a JSON string with a TTL of
``3 x interval``) every ``interval_s`` from its loop; a worker that dies simply expires.
``stream-ensemble status`` reads them with one ``SCAN`` + ``MGET``. The group is a hash tag
(``{...}``) so one group's heartbeats live on one Redis Cluster slot and a ``MGET`` of them works there too.
Redis is advisory: a failed write is counted and logged once per outage, never raised.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis

from stream_ensemble.adapters.metrics import WorkerMetrics
from stream_ensemble.adapters.redis_store import RedisClient
from stream_ensemble.types import BatchResult, RawMessage

log = logging.getLogger("stream_ensemble.heartbeat")


def heartbeat_pattern(key_prefix: str, group: str | None = None) -> str:
    """``SCAN`` pattern of the heartbeat keys (of one group, or all)."""
    return f"{key_prefix}:worker:{{{group}}}:*" if group else f"{key_prefix}:worker:*"


def read_heartbeats(client: RedisClient, key_prefix: str, group: str | None = None) -> list[dict[str, Any]]:
    """Every live worker's last heartbeat, oldest worker first."""
    keys = sorted(set(client.scan_iter(match=heartbeat_pattern(key_prefix, group), count=1000)))
    docs: list[dict[str, Any]] = []
    for k in range(0, len(keys), 500):
        chunk = keys[k : k + 500]
        # one key per MGET call keeps this valid on a Redis Cluster whatever the slots
        values = client.mget(chunk) if len({_tag(x) for x in chunk}) == 1 else [client.get(x) for x in chunk]
        for raw in values:
            if raw:
                try:
                    docs.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    continue
    return sorted(docs, key=lambda d: d.get("started", 0.0))


def _tag(key: bytes | str) -> str:
    text = key.decode() if isinstance(key, bytes) else key
    return text[text.find("{") : text.find("}") + 1]


class Heartbeat:
    """The worker's :class:`~stream_ensemble.ports.BatchObserver`: metrics, then a heartbeat
    every ``interval_s`` built from them.

    Parameters
    ----------
    client : redis.Redis or RedisCluster
    metrics : WorkerMetrics
        Counts, lag, assignment and selection come from here.
    group : str
        Consumer group (heartbeats are listed per group).
    serving : dict
        What this worker serves: ensemble tag, members, strategy, topics.
    health : callable, optional
        Returns the member names / tags currently marked down.
    """

    def __init__(self, client: RedisClient, metrics: WorkerMetrics, key_prefix: str, group: str,
                 serving: dict[str, Any], health: Any = None, interval_s: float = 5.0) -> None:
        self.client = client
        self.metrics = metrics
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.key = f"{key_prefix}:worker:{{{group}}}:{self.worker_id}"
        self.group = group
        self.serving = serving
        self.health = health
        self.interval_s = interval_s
        self.started = time.time()
        self._last = float("-inf")
        self._last_counts = (time.monotonic(), 0)
        self._failing = False
        self.errors = 0

    def tick(self) -> None:
        """Forward to the metrics; write the heartbeat when due."""
        self.metrics.tick()
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self.beat()

    def batch(self, messages: Sequence[RawMessage], result: BatchResult, scoring_s: float, batch_s: float) -> None:
        """Forward to the metrics."""
        self.metrics.batch(messages, result, scoring_s, batch_s)

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat document."""
        m = self.metrics
        now = time.monotonic()
        t0, n0 = self._last_counts
        consumed = m.totals["consumed"]
        rate = (consumed - n0) / max(now - t0, 1e-9)
        self._last_counts = (now, consumed)
        down = sorted(self.health()) if self.health is not None else []
        return {
            "worker_id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(), "group": self.group,
            **self.serving, "down": down, "selection_id": m.current_selection,
            "assigned": sorted(f"{t}[{p}]" for t, p in m.assigned), "lag": m.lag_by_partition(),
            "events_per_s": round(rate, 1), **m.totals, "started": self.started, "ts": time.time(),
            "ready": m.readyz()[0],
        }

    def beat(self) -> None:
        """Write the heartbeat now (errors are counted and logged once per outage)."""
        try:
            self.client.set(self.key, orjson.dumps(self.snapshot()), ex=max(int(self.interval_s * 3), 1))
            if self._failing:
                log.info("heartbeat written again", extra={"event": "heartbeat", "ok": True})
            self._failing = False
        except redis.RedisError as exc:
            self.errors += 1
            if not self._failing:
                log.warning("heartbeat write failed: %s", exc, extra={"event": "heartbeat", "ok": False})
            self._failing = True

    def close(self) -> None:
        """Remove the heartbeat (a clean stop disappears from ``status`` at once)."""
        try:
            self.client.delete(self.key)
        except redis.RedisError:
            pass
