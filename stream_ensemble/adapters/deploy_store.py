"""Deployments in Redis: the version a fleet serves, its history, and versions workers refused.

Keys (plain text / JSON, readable with ``redis-cli``; see the README's Redis key table):

* ``<prefix>:deploy:<ensemble>`` -- string ``name@vN``, the version the fleet serves. Workers
  poll it (``SET se:deploy:default default@v3`` deploys too, without history).
* ``<prefix>:deploy:<ensemble>:history`` -- list, newest first, of JSON
  ``{"version", "previous", "action", "who", "when", "why"}`` (``action``: deploy or rollback).
* ``<prefix>:deploy:<ensemble>:refused`` -- hash, field = ``name@vN``, value JSON
  ``{"reason", "worker", "when"}``: the last refusal of that version by some worker.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import orjson
import redis

from stream_ensemble.adapters.redis_store import OUTAGE, RedisClient
from stream_ensemble.errors import RedisAdapterError

log = logging.getLogger("stream_ensemble.deploy")
HISTORY_KEEP = 200


class RedisDeployStore:
    """One fleet's deployment keys.

    Parameters
    ----------
    client : redis.Redis or RedisCluster
    key_prefix : str
    ensemble : str
        The fleet's ensemble name (``--ensemble``).
    """

    def __init__(self, client: RedisClient, key_prefix: str, ensemble: str) -> None:
        self.client = client
        self.key = f"{key_prefix}:deploy:{ensemble}"
        self.history_key = f"{self.key}:history"
        self.refused_key = f"{self.key}:refused"
        self.worker = f"{socket.gethostname()}-{os.getpid()}"
        self._target: str | None = None
        self.errors = 0

    # ------------------------------------------------ worker side (advisory)
    def target(self) -> str | None:
        """The deployed ``name@vN`` (the last known one when Redis fails).

        A failed read is counted in ``errors`` and reported to the process's Redis outage
        log (one line when the outage starts, one when it ends), not logged per read.
        """
        try:
            raw = self.client.get(self.key)
            self._target = _text(raw).strip() if raw else None
        except redis.RedisError as exc:
            self.errors += 1
            OUTAGE.failed(f"deploy target read, keeping {self._target}", exc)
        else:
            OUTAGE.ok()
        return self._target

    def refused(self, tag: str, reason: str) -> None:
        """Record a refusal (logged, never raised, on failure)."""
        try:
            self.client.hset(self.refused_key, tag, orjson.dumps({"reason": reason, "worker": self.worker, "when": time.time()}))
        except redis.RedisError as exc:
            self.errors += 1
            log.warning("could not record the refusal of %s: %s", tag, exc)

    # --------------------------------------------------- operator side
    def current(self) -> str | None:
        """The deployed version (raises when Redis fails)."""
        try:
            raw = self.client.get(self.key)
        except redis.RedisError as exc:
            raise RedisAdapterError(f"cannot read {self.key}: {exc}") from exc
        return _text(raw).strip() if raw else None

    def deploy(self, tag: str, who: str, why: str, action: str = "deploy") -> dict[str, Any]:
        """Point the fleet at ``tag`` and append the history entry; returns the entry.

        Raises
        ------
        RedisAdapterError
        """
        entry = {"version": tag, "previous": self.current(), "action": action, "who": who, "when": time.time(), "why": why}
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.key, tag)
            pipe.lpush(self.history_key, orjson.dumps(entry))
            pipe.ltrim(self.history_key, 0, HISTORY_KEEP - 1)
            pipe.execute()
        except redis.RedisError as exc:
            raise RedisAdapterError(f"cannot write {self.key}: {exc}") from exc
        return entry

    def history(self, n: int = 20) -> list[dict[str, Any]]:
        """The last ``n`` entries, newest first."""
        try:
            raw = self.client.lrange(self.history_key, 0, n - 1)
        except redis.RedisError as exc:
            raise RedisAdapterError(f"cannot read {self.history_key}: {exc}") from exc
        return [dict(orjson.loads(r)) for r in raw]

    def refusals(self) -> dict[str, dict[str, Any]]:
        """Every recorded refusal, by version."""
        try:
            raw = self.client.hgetall(self.refused_key)
        except redis.RedisError as exc:
            raise RedisAdapterError(f"cannot read {self.refused_key}: {exc}") from exc
        return {_text(k): dict(orjson.loads(v)) for k, v in raw.items()}

    def rollback_target(self) -> str | None:
        """The version before the current one: the ``previous`` of the deploy that set it.

        Rollbacks are skipped when walking back, so two rollbacks go back two deploys
        (v1 -> v2 -> v3, rollback: v2, rollback: v1), not back and forth; so are versions that
        workers refused (they never served).
        """
        history = self.history(HISTORY_KEEP)
        refused = set(self.refusals())
        current, seen = self.current(), set()
        while current is not None and current not in seen:
            seen.add(current)
            setter = next((e for e in history if e.get("action") == "deploy" and e.get("version") == current), None)
            prev = setter.get("previous") if setter else None
            if not prev or str(prev) not in refused:
                return str(prev) if prev else None
            current = str(prev)  # a version workers refused never served: roll back past it
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
