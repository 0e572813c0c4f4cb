"""Redis keys of experiments (plain text, readable and writable with ``redis-cli``).

* ``se:ab:<ensemble>`` -- hash: the experiment (fields in ``core/experiments/spec.py``).
* ``se:abstats:<experiment>`` -- hash, field = join partition, value = JSON of that partition's
  sums (written each second by the ``ab evaluate`` instance that owns the partition).
* ``se:abjoin:<app id>`` -- hash, field = join partition, value = JSON of the join's counters
  (joined, unknown / expired / duplicate outcomes, unlabelled scores).
* ``se:abhist:<experiment>`` -- list of JSON looks (time, per arm n and metric, comparison),
  appended each second by the join's leader; ``ab report`` plots it.
* ``se:deploy:<ensemble>`` -- string: the version the fleet serves (``ab promote`` sets it).
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_ensemble.adapters.redis_store import RedisClient

HISTORY_MAX = 20_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ABStore:
    """Reads and writes the experiment keys under ``prefix``."""

    def __init__(self, client: RedisClient, prefix: str = "se") -> None:
        self.client = client
        self.prefix = prefix

    def key(self, ensemble: str) -> str:
        return f"{self.prefix}:ab:{ensemble}"

    def read(self, ensemble: str) -> dict[str, str]:
        """The experiment hash of ``ensemble`` ({} when there is none)."""
        raw = self.client.hgetall(self.key(ensemble))
        return {_text(k): _text(v) for k, v in raw.items()}

    def write(self, ensemble: str, fields: dict[str, str], replace: bool = False) -> None:
        """Set ``fields`` (all of the hash when ``replace``)."""
        pipe = self.client.pipeline()
        if replace:
            pipe.delete(self.key(ensemble))
        pipe.hset(self.key(ensemble), mapping=dict(fields))  # type: ignore[arg-type]
        pipe.execute()

    def ensembles(self) -> list[str]:
        """Names of the ensembles that have an experiment hash."""
        start = len(self.prefix) + 4
        return sorted(_text(k)[start:] for k in self.client.scan_iter(match=f"{self.prefix}:ab:*", count=500))

    # ------------------------------------------------------------- join sums
    def publish_partition(self, experiment: str, partition: int, part: dict[str, Any]) -> None:
        self.client.hset(f"{self.prefix}:abstats:{experiment}", str(partition), orjson.dumps(part))

    def partitions(self, experiment: str) -> list[dict[str, Any]]:
        """Every partition's sums of ``experiment`` (merge with ``join.merge_stats``)."""
        raw = self.client.hgetall(f"{self.prefix}:abstats:{experiment}")
        return [orjson.loads(v) for v in raw.values()]

    def publish_counts(self, app_id: str, partition: int, counts: dict[str, int]) -> None:
        self.client.hset(f"{self.prefix}:abjoin:{app_id}", str(partition), orjson.dumps(counts))

    def counts(self, app_id: str) -> dict[str, int]:
        """The join's counters summed over partitions."""
        total: dict[str, int] = {}
        for v in self.client.hgetall(f"{self.prefix}:abjoin:{app_id}").values():
            for k, n in orjson.loads(v).items():
                total[k] = total.get(k, 0) + int(n)
        return total

    def append_history(self, experiment: str, point: dict[str, Any]) -> None:
        key = f"{self.prefix}:abhist:{experiment}"
        pipe = self.client.pipeline()
        pipe.rpush(key, orjson.dumps(point))
        pipe.ltrim(key, -HISTORY_MAX, -1)
        pipe.execute()

    def history(self, experiment: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in self.client.lrange(f"{self.prefix}:abhist:{experiment}", 0, -1)]

    def clear_results(self, experiment: str, app_id: str | None = None) -> None:
        """Forget the sums and history of ``experiment`` (a new experiment id starts clean anyway)."""
        keys = [f"{self.prefix}:abstats:{experiment}", f"{self.prefix}:abhist:{experiment}"]
        self.client.delete(*keys)

    # ------------------------------------------------------------- deployment
    def deployed(self, ensemble: str) -> str | None:
        value = self.client.get(f"{self.prefix}:deploy:{ensemble}")
        return None if value is None else _text(value)

    def deploy(self, ensemble: str, tag: str) -> None:
        self.client.set(f"{self.prefix}:deploy:{ensemble}", tag)
