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
from typing import Any, TypeAlias, cast
from urllib.parse import urlsplit

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from stream_ensemble.addresses import redact_url
from stream_ensemble.config import RedisConfig
from stream_ensemble.errors import RedisAdapterError

log = logging.getLogger("stream_ensemble.redis")


RedisClient: TypeAlias = "redis.Redis | RedisCluster"


class _Outage:
    """Logs a Redis outage once when it starts and once when it ends (``event: redis``).

    The cache and the health reads of one process share it, so an outage of any length is
    two log lines, not one per batch.
    """

    def __init__(self) -> None:
        self.down_since: float | None = None

    def failed(self, what: str, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("Redis unreachable (%s): scoring without the cache, with the last known health: %s", what, exc,
                        extra={"event": "redis", "state": "down", "reason": str(exc)})

    def ok(self) -> None:
        if self.down_since is not None:
            down_s = time.monotonic() - self.down_since
            self.down_since = None
            log.info("Redis reachable again after %.1f s", down_s,
                     extra={"event": "redis", "state": "up", "down_s": round(down_s, 1)})


OUTAGE = _Outage()


def connect(cfg: RedisConfig, advisory: bool = False) -> RedisClient:
    """A client for ``cfg.url``, checked with PING.

    ``redis://`` / ``rediss://`` / ``unix://`` give a plain client; ``redis+cluster://host:port``
    a Redis Cluster client (any node as the seed; slots discovered); ``redis+sentinel://h:26379
    [,h2:26379]/<service>[/db]`` the current primary of ``service`` through the sentinels.

    ``advisory=True`` (the worker: Redis is advisory) returns the client even when the server
    does not answer yet; redis-py connects on the next command, and the outage is logged once.

    Raises
    ------
    RedisAdapterError
        The server does not answer (and not ``advisory``), or the URL cannot make a client.
    """
    try:
        client = _client(cfg)
    except redis.RedisError as exc:
        raise RedisAdapterError(f"Redis at {redact_url(cfg.url)} is not reachable: {exc}") from exc
    try:
        client.ping()
    except redis.RedisError as exc:
        if not advisory:
            raise RedisAdapterError(f"Redis at {redact_url(cfg.url)} is not reachable: {exc}") from exc
        OUTAGE.failed(f"at start, {redact_url(cfg.url)}", exc)
    return client


def _client(cfg: RedisConfig) -> RedisClient:
    timeouts: dict[str, Any] = {"socket_timeout": cfg.socket_timeout_s, "socket_connect_timeout": 2.0}
    scheme, _, rest = cfg.url.partition("://")
    if scheme.endswith("+cluster"):
        return RedisCluster.from_url(f"{scheme.removesuffix('+cluster')}://{rest}", **timeouts)
    if scheme == "redis+sentinel":
        parts = urlsplit(cfg.url)
        hosts = parts.netloc.rpartition("@")[2]
        sentinels = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 26379) for h in hosts.split(",")]
        service, _, db = parts.path.lstrip("/").partition("/")
        # through Any: redis-py types Sentinel.__init__ in some releases and not in others
        sentinel_cls: Any = Sentinel
        sentinel: Any = sentinel_cls(sentinels, sentinel_kwargs=timeouts)
        primary: redis.Redis = sentinel.master_for(
            service, db=int(db or 0), password=parts.password, username=parts.username, **timeouts)
        return primary
    return redis.Redis.from_url(cfg.url, **timeouts)


def is_cluster(client: RedisClient) -> bool:
    """True for a Redis Cluster client (multi-key commands must stay within one slot)."""
    return isinstance(client, RedisCluster)


#: Sets KEYS[i] to the i-th slice of ARGV[3] (the values concatenated; ARGV[2] lists their
#: lengths, comma-separated) with a TTL of ARGV[1] seconds: a batch's cache writes are one
#: command whose values travel as one argument (see :meth:`RedisCache.set_many`).
_SET_MANY_EX = """
local ttl, blob, pos, i = ARGV[1], ARGV[3], 1, 0
for len in string.gmatch(ARGV[2], '%d+') do
  i = i + 1
  local stop = pos + tonumber(len)
  redis.call('SET', KEYS[i], string.sub(blob, pos, stop - 1), 'EX', ttl)
  pos = stop
end
return i
"""


class RedisCache:
    """Prediction cache: one ``MGET`` per batch and one scripted multi-``SET EX`` per batch
    (a pipeline of ``SET EX`` on a cluster)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.errors = 0
        # A script touches keys of one slot only, so a cluster keeps the pipelined SET EX.
        self._scripted = not isinstance(client, RedisCluster)
        # The connection of a scripted write whose reply is not read yet (see set_many).
        self._pending: Any = None

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` (misses on failure); the last write is complete before the read."""
        self.settle()
        if not keys:
            return []
        try:
            if isinstance(self.client, RedisCluster):
                # cache keys spread over the slots on purpose (no hash tag): one MGET per node
                values = list(self.client.mget_nonatomic(keys))
                OUTAGE.ok()
                return values
            values = list(self.client.mget(keys))
        except redis.RedisError as exc:
            self.errors += 1
            OUTAGE.failed("cache read", exc)
            return [None] * len(keys)
        OUTAGE.ok()
        return values

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """Store values with a TTL (failures are logged and counted).

        On a standalone or Sentinel Redis the write is sent and its reply read later (by the
        next :meth:`get_many`, :meth:`set_many` or :meth:`settle`), so Redis runs the batch's
        ``SET`` s while the worker produces, polls and decodes the next batch; a read always
        sees the writes before it.
        """
        self.settle()
        if not items:
            return
        try:
            if self._scripted:
                self._eval_set_many(items, ttl_s)
                return
            pipe = self.client.pipeline(transaction=False)
            for key, value in items:
                pipe.set(key, value, ex=ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            self.errors += 1
            OUTAGE.failed("cache write", exc)

    def _eval_set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """Send one ``EVAL`` of :data:`_SET_MANY_EX`, its ~1 MB of values without a copy.

        redis-py's packer copies every argument into the command (hiredis at ~4 ns a byte: 4
        ms for a batch of 1,000 scored bodies); here the keys and lengths are packed and the
        values follow as one chunk on the same connection. ``EVAL``, not ``EVALSHA``: the
        script's text is 0.03% of the command and there is no ``NOSCRIPT`` after a restart.
        The connection stays out of the pool until :meth:`settle` reads the reply.
        """
        values = [v for _, v in items]
        blob = b"".join(values)
        lengths = ",".join(map(str, map(len, values)))
        head = _pack_command(("EVAL", _SET_MANY_EX, len(items), *(k for k, _ in items), ttl_s, lengths), extra_args=1)
        pool = self._pool()
        conn = pool.get_connection()
        try:
            conn.send_packed_command([head, b"$%d\r\n" % len(blob), blob, b"\r\n"])
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise
        self._pending = conn

    def _pool(self) -> Any:
        """The connection pool of a standalone or Sentinel client (the scripted writes' only users)."""
        return cast(redis.Redis, self.client).connection_pool

    def settle(self) -> None:
        """Read the reply of the write in flight, if any (failures are logged and counted)."""
        conn, self._pending = self._pending, None
        if conn is None:
            return
        pool = self._pool()
        try:
            reply = conn.read_response()
            if isinstance(reply, redis.ResponseError):
                raise reply
        except redis.RedisError as exc:
            conn.disconnect()
            self.errors += 1
            OUTAGE.failed("cache write", exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)


def _pack_command(args: tuple[Any, ...], extra_args: int = 0) -> bytes:
    """RESP encoding of ``args`` (hiredis) announcing ``extra_args`` more arguments sent after it."""
    packed: bytes = hiredis.pack_command(args)
    return b"*%d" % (len(args) + extra_args) + packed[packed.index(b"\r\n"):]


class RedisHealthStore:
    """Model health from the ``<prefix>:health`` hash, re-read at most every ``refresh_s``.

    Between refreshes the last known state is served, so the hot path costs no round trip
    per batch; a change is visible within ``refresh_s`` (at most 2 s by config validation).
    """

    def __init__(self, client: RedisClient, key_prefix: str = "se", refresh_s: float = 1.0) -> None:
        self.client = client
        self.key = f"{key_prefix}:health"
        self.refresh_s = refresh_s
        self._down: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self.errors = 0
        #: False until the health hash was read once: with Redis down at start the marks are
        #: unknown and scored events say so (``degraded_reason: health_unknown``).
        self.known = False

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
                self.known = True
                OUTAGE.ok()
            except redis.RedisError as exc:
                self.errors += 1
                OUTAGE.failed("health read", exc)
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
