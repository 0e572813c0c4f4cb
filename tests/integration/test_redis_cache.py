"""RedisCache on the real Redis: the batch write (one EVAL, values sent as one chunk, reply read
later) stores every value byte for byte with its TTL, and a read sees the writes before it."""

from __future__ import annotations

import os

import redis

from stream_ensemble.adapters.redis_store import RedisCache


def test_batch_write_round_trips_every_byte_with_its_ttl(rclient: redis.Redis) -> None:
    prefix = f"se-test-cache-{os.getpid()}"
    cache = RedisCache(rclient)
    items = [(f"{prefix}:{i}", bytes(range(256)) * (i % 4) + b'{"\xc3\xa9":"\\r\\n$3\r\n"}' + str(i).encode())
             for i in range(1500)]
    items.append((f"{prefix}:empty", b""))
    try:
        cache.set_many(items, 120)
        # the read settles the write first: no window where a just-written key is missing
        assert cache.get_many([k for k, _ in items]) == [v for _, v in items]
        assert 0 < rclient.ttl(f"{prefix}:7") <= 120
        cache.set_many(items[:3], 30)  # a second write after the first's reply was read
        cache.settle()
        assert 0 < rclient.ttl(items[0][0]) <= 30 and cache.errors == 0
    finally:
        rclient.delete(*[k for k, _ in items])


def test_a_write_redis_refuses_is_counted_not_raised(rclient: redis.Redis) -> None:
    cache = RedisCache(rclient)
    key = f"se-test-cache-{os.getpid()}:refused"
    try:
        cache.set_many([(key, b"v")], -5)  # SET ... EX -5: "invalid expire time" from the script
        cache.settle()
        assert cache.errors == 1
        cache.set_many([(key, b"v")], 60)
        assert cache.get_many([key]) == [b"v"] and cache.errors == 1
    finally:
        rclient.delete(key)
