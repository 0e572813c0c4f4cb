"""Redis bytes per cached event, measured where users pay them: a real worker's cache.

Runs the end-to-end demo (a worker scoring held-out events through the broker, cache cleared
first), then asks Redis ``MEMORY USAGE`` (key + value + allocator overhead) of every cache key
that ensemble wrote. The figure sizes Redis: ``maxmemory >= bytes_per_key x distinct events
per TTL`` (README, "Scaling out").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stream_ensemble.adapters.redis_store import RedisClient, connect
from stream_ensemble.config import Config


def cache_key_sizes(client: RedisClient, pattern: str) -> dict[str, Any]:
    """Count and mean sizes of the keys matching ``pattern``.

    Returns
    -------
    dict
        ``keys``, ``memory_usage_bytes_mean`` (MEMORY USAGE), ``value_bytes_mean`` (STRLEN),
        ``key_bytes_mean``.
    """
    keys = list(client.scan_iter(match=pattern, count=1000))
    if not keys:
        return {"keys": 0}
    mem = [int(client.memory_usage(k) or 0) for k in keys]
    val = [int(client.strlen(k)) for k in keys]
    return {
        "keys": len(keys),
        "memory_usage_bytes_mean": round(sum(mem) / len(keys), 1),
        "memory_usage_bytes_max": max(mem),
        "value_bytes_mean": round(sum(val) / len(keys), 1),
        "key_bytes_mean": round(sum(len(k) for k in keys) / len(keys), 1),
    }


def run(cfg: Config, events: int, timeout_s: float) -> dict[str, Any]:
    """Demo run, then the sizes of that ensemble's cache keys (a JSON-ready summary)."""
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.demo import run_demo

    t0 = time.time()
    demo = run_demo(cfg.kafka.bootstrap, cfg.redis.url, cfg.worker.registry, events, 0, timeout_s, False, cfg.kafka)
    manifest = Registry(Path(cfg.worker.registry)).manifest("ensembles", "default")
    tag = f"default@v{manifest['version']}"
    sizes = cache_key_sizes(connect(cfg.redis), f"{cfg.redis.key_prefix}:cache:{tag}:*")
    return {"ensemble": tag, "members": len(manifest.get("members", [])), "explain": cfg.worker.explain,
            "events": demo["scored"], "lost": demo["lost"], **sizes, "seconds": round(time.time() - t0, 1)}
