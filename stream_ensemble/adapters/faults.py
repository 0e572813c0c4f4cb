"""Publishing what the member guard reports: breaker transitions and member failures.

The core's breakers and the serving path only report (:mod:`stream_ensemble.core.members.guard`);
this adapter makes it visible:

* one structured log line per breaker transition (``event: breaker``) and, for member
  failures, one line per member and reason at most every ``log_every_s`` (``event:
  member_failed``, with ``repeated`` = failures held back since the last line);
* ``se_member_breaker_state{member}``, ``se_member_failures_total{member,reason}`` and
  ``se_member_latency_seconds{member}`` in the metrics;
* the Redis hash ``<prefix>:breaker``: field ``name@vN``, value JSON ``{"state", "failures",
  "reason", "worker", "since"}`` of the last transition any worker saw (health marks in
  ``<prefix>:health`` stay the operators': the worker never writes them). A clean stop removes
  the fields this worker wrote last. Redis is advisory: a failed write is logged, never raised.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import orjson
import redis

from stream_ensemble.adapters.metrics import WorkerMetrics
from stream_ensemble.adapters.redis_store import RedisClient

log = logging.getLogger("stream_ensemble.faults")


class Transition(Protocol):
    """What :class:`stream_ensemble.core.members.breaker.Transition` carries (adapters do not import the core)."""

    @property
    def member(self) -> str: ...
    @property
    def old(self) -> str: ...
    @property
    def new(self) -> str: ...
    @property
    def failures(self) -> int: ...
    @property
    def reason(self) -> str: ...


def breaker_key(key_prefix: str) -> str:
    """The Redis hash of breaker states."""
    return f"{key_prefix}:breaker"


class FaultReporter:
    """Listener of a :class:`~stream_ensemble.core.members.guard.MemberGuard`.

    Parameters
    ----------
    client : redis client or None
        None: logs and metrics only.
    metrics : WorkerMetrics or None
    key_prefix : str
    worker_id : str
        Written into the breaker values (which worker saw it).
    log_every_s : float
        Least seconds between two failure lines of one member and reason.
    """

    def __init__(self, client: RedisClient | None, metrics: WorkerMetrics | None, key_prefix: str = "se",
                 worker_id: str = "", log_every_s: float = 10.0) -> None:
        self.client = client
        self.metrics = metrics
        self.key = breaker_key(key_prefix)
        self.worker_id = worker_id
        self.log_every_s = log_every_s
        self.states: dict[str, str] = {}
        self._written: set[str] = set()
        self._last_log: dict[tuple[str, str], tuple[float, int]] = {}

    def transition(self, t: Transition) -> None:
        """A breaker changed state: log, metrics, Redis."""
        self.states[t.member] = t.new
        level = logging.WARNING if t.new != "closed" else logging.INFO
        log.log(level, "breaker of %s %s -> %s after %d failures (%s)", t.member, t.old, t.new, t.failures, t.reason,
                extra={"event": "breaker", "member": t.member, "state": t.new, "was": t.old, "failures": t.failures,
                       "reason": t.reason})
        if self.metrics is not None:
            self.metrics.breaker(t.member, t.new)
        if self.client is None:
            return
        value = orjson.dumps({"state": t.new, "failures": t.failures, "reason": t.reason, "worker": self.worker_id,
                              "since": time.time()})
        try:
            self.client.hset(self.key, t.member, value)
            self._written.add(t.member)
        except redis.RedisError as exc:
            log.warning("breaker state not written to Redis: %s", exc)

    def member(self, tag: str, seconds: float, reason: str | None) -> None:
        """One member's outcome on one batch (``reason`` None: it scored)."""
        if self.metrics is not None:
            self.metrics.member(tag, seconds if seconds > 0 else None, reason)
        if reason is None:
            return
        now = time.monotonic()
        last, held = self._last_log.get((tag, reason), (float("-inf"), 0))
        if now - last < self.log_every_s:
            self._last_log[(tag, reason)] = (last, held + 1)
            return
        self._last_log[(tag, reason)] = (now, 0)
        log.warning("member %s failed on a batch: %s", tag, reason,
                    extra={"event": "member_failed", "member": tag, "reason": reason, "repeated": held,
                           "seconds": round(seconds, 4)})

    def snapshot(self) -> dict[str, Any]:
        """Breakers not closed, ``{tag: state}`` (for the heartbeat)."""
        return {t: s for t, s in sorted(self.states.items()) if s != "closed"}

    def close(self) -> None:
        """Remove the breaker fields this worker wrote last (a stopped worker has no breakers)."""
        if self.client is None or not self._written:
            return
        try:
            for tag in sorted(self._written):
                raw = self.client.hget(self.key, tag)
                if raw and orjson.loads(raw).get("worker") == self.worker_id:
                    self.client.hdel(self.key, tag)
        except (redis.RedisError, orjson.JSONDecodeError):
            pass
