"""Redis adapters: prediction cache and model-health keys (redis-py, hiredis parser).

Redis is advisory: a failed read returns misses / the last known health and
counts the failure in ``errors``; it never fails an event. Key layout (documented in the
README, stable for operators using ``redis-cli``):

* ``se:health`` -- hash, field = member name (all versions) or ``name@vN``, value ``down``
  or ``up``. ``HSET se:health knn down`` takes ``knn`` out within ``health_refresh_s``.
* ``se:cache:<ensemble@vN>:<selection id>:<explain level>:<features hash>`` -- string,
  the scored body (JSON), with a TTL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis

from stream_ensemble.config import RedisConfig, redact_url
from stream_ensemble.errors import RedisAdapterError

log = logging.getLogger("stream_ensemble.redis")


def connect(cfg: RedisConfig) -> redis.Redis:
    """A client for ``cfg.url``, checked with PING.

    Raises
    ------
    RedisAdapterError
        The server does not answer.
    """
    client = redis.Redis.from_url(cfg.url, socket_timeout=cfg.socket_timeout_s, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisAdapterError(f"Redis at {redact_url(cfg.url)} is not reachable: {exc}") from exc
    return client


#: Sets every KEYS[i] to ARGV[i + 1] with a TTL of ARGV[1] seconds: a batch's cache writes
#: are one command (a pipeline of n ``SET EX`` costs n client-side command objects).
_SET_MANY_EX = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
end
return #KEYS
"""


class RedisCache:
    """Prediction cache: one ``MGET`` per batch and one scripted multi-``SET EX`` per batch."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.errors = 0
        self._set_many_ex = client.register_script(_SET_MANY_EX)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` (misses on failure)."""
        if not keys:
            return []
        try:
            return list(self.client.mget(keys))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            self.errors += 1
            log.warning("cache read failed, scoring without cache: %s", exc)
            return [None] * len(keys)

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """Store values with a TTL (failures are logged and counted)."""
        if not items:
            return
        try:
            self._set_many_ex(keys=[k for k, _ in items], args=[ttl_s, *(v for _, v in items)])
        except redis.RedisError as exc:
            self.errors += 1
            log.warning("cache write failed: %s", exc)


class RedisHealthStore:
    """Model health from the ``<prefix>:health`` hash, re-read at most every ``refresh_s``.

    Between refreshes the last known state is served, so the hot path costs no round trip
    per batch; a change is visible within ``refresh_s`` (at most 2 s by config validation).
    """

    def __init__(self, client: redis.Redis, key_prefix: str = "se", refresh_s: float = 1.0) -> None:
        self.client = client
        self.key = f"{key_prefix}:health"
        self.refresh_s = refresh_s
        self._down: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self.errors = 0

    def down(self) -> frozenset[str]:
        """Member names / tags whose value is ``down``."""
        now = time.monotonic()
        if now - self._read_at >= self.refresh_s:
            try:
                raw = self.client.hgetall(self.key)
                down = frozenset(_text(k) for k, v in raw.items() if _text(v).strip().lower() == "down")
                if down != self._down:
                    log.info("health changed: down %s", sorted(down) or "none",
                             extra={"event": "health", "down": sorted(down), "was_down": sorted(self._down)})
                self._down = down
            except redis.RedisError as exc:
                self.errors += 1
                log.warning("health read failed, keeping last known state: %s", exc)
            self._read_at = now
        return self._down

    def set(self, member: str, state: str) -> None:
        """Mark ``member`` ``up`` or ``down`` (operators' CLI).

        Raises
        ------
        RedisAdapterError
            Redis unreachable, or a state other than up/down.
        """
        if state not in ("up", "down"):
            raise RedisAdapterError(f"health state must be 'up' or 'down', got {state!r}")
        try:
            self.client.hset(self.key, member, state)
        except redis.RedisError as exc:
            raise RedisAdapterError(f"cannot write health of {member}: {exc}") from exc

    def all(self) -> dict[str, str]:
        """Every explicitly set member state."""
        try:
            return {_text(k): _text(v) for k, v in self.client.hgetall(self.key).items()}
        except redis.RedisError as exc:
            raise RedisAdapterError(f"cannot read health: {exc}") from exc


def _text(value: bytes | str) -> str:
    """Redis replies are bytes unless the client decodes responses; accept both."""
    return value.decode() if isinstance(value, bytes) else value
