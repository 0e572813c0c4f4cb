"""Frozen configuration, built in one place.

Only :func:`load_config` reads the environment. Precedence: explicit overrides (CLI flags)
> environment variables (``SE_*``) > defaults. Every value is checked in ``__post_init__``
so a bad setting fails at start-up with one clear line, not mid-stream.

Environment variables
---------------------
SE_BOOTSTRAP       Kafka bootstrap servers            (127.0.0.1:9092)
SE_GROUP_ID        consumer group                     (stream-ensemble)
SE_FEATURES_TOPIC  input topic                        (features)
SE_SCORES_TOPIC    output topic                       (scores)
SE_DLQ_TOPIC       dead-letter topic                  (features.dlq)
SE_BATCH_SIZE      max events per batch               (1000)
SE_REDIS_URL       Redis URL                          (redis://127.0.0.1:6379/0)
SE_CACHE_TTL_S     prediction cache TTL seconds       (3600; 0 disables the cache)
SE_REGISTRY        model registry directory           (var/registry)
SE_ENSEMBLE        ensemble name in the registry      (default)
SE_EXPLAIN         explanation level none|summary|full (summary)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from stream_ensemble.errors import ConfigError

EXPLAIN_LEVELS = ("none", "summary", "full")


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """Kafka connection, topics and batching."""

    bootstrap: str = "127.0.0.1:9092"
    group_id: str = "stream-ensemble"
    features_topic: str = "features"
    scores_topic: str = "scores"
    dlq_topic: str = "features.dlq"
    batch_size: int = 1000
    # How long a poll may wait to fill a batch: the batching delay added to an event's
    # latency when traffic is light (consume() waits for a full batch or this timeout).
    poll_timeout_s: float = 0.05
    delivery_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.bootstrap:
            raise ConfigError("kafka bootstrap servers must not be empty")
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigError(f"batch size must be in 1..100000, got {self.batch_size}")
        if self.poll_timeout_s <= 0 or self.delivery_timeout_s <= 0:
            raise ConfigError("poll and delivery timeouts must be positive")
        topics = (self.features_topic, self.scores_topic, self.dlq_topic)
        if len(set(topics)) != 3 or not all(topics):
            raise ConfigError(f"features, scores and DLQ topics must be distinct and non-empty: {topics}")


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Redis connection and key behaviour (see the README for the key layout)."""

    url: str = "redis://127.0.0.1:6379/0"
    cache_ttl_s: int = 3600
    health_refresh_s: float = 1.0
    key_prefix: str = "se"
    socket_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis url must start with redis://, rediss:// or unix://, got {self.url!r}")
        if self.cache_ttl_s < 0:
            raise ConfigError("cache TTL must be >= 0 (0 disables the cache)")
        if not 0 < self.health_refresh_s <= 2.0:
            # The product promises a health change is seen within 2 s.
            raise ConfigError("health refresh must be in (0, 2] seconds")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the worker serves."""

    registry: Path = Path("var/registry")
    ensemble: str = "default"
    explain: str = "summary"

    def __post_init__(self) -> None:
        if self.explain not in EXPLAIN_LEVELS:
            raise ConfigError(f"explain level must be one of {', '.join(EXPLAIN_LEVELS)}, got {self.explain!r}")


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of one worker process."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)


_ENV = {
    "SE_BOOTSTRAP": ("kafka", "bootstrap"),
    "SE_GROUP_ID": ("kafka", "group_id"),
    "SE_FEATURES_TOPIC": ("kafka", "features_topic"),
    "SE_SCORES_TOPIC": ("kafka", "scores_topic"),
    "SE_DLQ_TOPIC": ("kafka", "dlq_topic"),
    "SE_BATCH_SIZE": ("kafka", "batch_size"),
    "SE_REDIS_URL": ("redis", "url"),
    "SE_CACHE_TTL_S": ("redis", "cache_ttl_s"),
    "SE_REGISTRY": ("worker", "registry"),
    "SE_ENSEMBLE": ("worker", "ensemble"),
    "SE_EXPLAIN": ("worker", "explain"),
}


def load_config(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the configuration.

    Parameters
    ----------
    env : mapping, optional
        Environment (default ``os.environ``); only ``SE_*`` keys are read.
    **overrides
        ``section__field=value`` pairs (e.g. ``kafka__bootstrap="host:9092"``); ``None``
        values are ignored so CLI options can be passed straight through.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown override, a value of the wrong type, or a value out of range.
    """
    import os

    source = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {"kafka": {}, "redis": {}, "worker": {}}
    for var, (section, name) in _ENV.items():
        if var in source:
            values[section][name] = source[var]
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition("__")
        if section not in values:
            raise ConfigError(f"unknown setting {key!r}")
        values[section][name] = value
    base = Config()
    return Config(
        kafka=_build(base.kafka, values["kafka"]),
        redis=_build(base.redis, values["redis"]),
        worker=_build(base.worker, values["worker"]),
    )


def _build(default: Any, values: dict[str, Any]) -> Any:
    types = {f.name: type(getattr(default, f.name)) for f in fields(default)}
    converted: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in types:
            raise ConfigError(f"unknown setting {type(default).__name__}.{name}")
        kind = types[name]
        try:
            converted[name] = kind(raw) if not isinstance(raw, kind) else raw
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {kind.__name__}, got {raw!r}") from None
    return replace(default, **converted)
