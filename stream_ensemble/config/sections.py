"""The configuration's sections: one frozen dataclass per section, each value checked on build.

A bad value raises :class:`~stream_ensemble.errors.ConfigError` in ``__post_init__`` so it fails
at start-up with one clear line (exit 2), not mid-stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from stream_ensemble.addresses import check_bootstrap, check_host_port, check_redis_url, redact_url
from stream_ensemble.errors import ConfigError

EXPLAIN_LEVELS = ("none", "summary", "full")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
GROUP_PROTOCOLS = ("consumer", "classic")


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
    # Cap of one DLQ record (the original is truncated to fit; its size and sha256 are kept):
    # below the producer's message.max.bytes (1,000,000) so a huge bad event cannot stop the worker.
    dlq_max_bytes: int = 900_000
    # How long the group waits for a silent worker (kill -9) before giving its partitions to
    # the others; 6 s is the least a default broker accepts (group.min.session.timeout.ms).
    # Heartbeats come from librdkafka's own thread, so a slow batch does not expire it.
    session_timeout_s: float = 6.0
    # Consumer group protocol (README, Faults): "consumer" (KIP-848, brokers >= 4.0) keeps the
    # member id across a broker outage and has no join barrier, so a worker resumes within ~1 s
    # of the broker's return; the session timeout is then the broker's
    # (group.consumer.session.timeout.ms, 4 s in ops/) and session_timeout_s applies to
    # "classic" only. A broker refusing it gets a classic consumer (KafkaSource._replace).
    # (The one consumer-protocol run of bench faults broker_down_90s that hung was a producer
    # that never reported 41 messages; KafkaSink now replaces such a producer.)
    group_protocol: str = "consumer"
    partitions: int = 4
    # Security (librdkafka names): applied to the consumer, the producer and the admin client.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_location: str = ""
    ssl_certificate_location: str = ""
    ssl_key_location: str = ""
    ssl_key_password: str = ""

    def __post_init__(self) -> None:
        check_bootstrap(self.bootstrap)
        self._check_security()
        if not self.group_id:
            raise ConfigError("kafka group id must not be empty")
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigError(f"batch size must be in 1..100000, got {self.batch_size}")
        if self.poll_timeout_s <= 0 or self.delivery_timeout_s <= 0:
            raise ConfigError("poll and delivery timeouts must be positive")
        if not 1.0 <= self.session_timeout_s <= 1800.0:
            raise ConfigError(f"session timeout must be in [1, 1800] s (brokers accept 6..1800 by default), got {self.session_timeout_s}")
        if self.group_protocol not in GROUP_PROTOCOLS:
            raise ConfigError(f"kafka group protocol must be one of {', '.join(GROUP_PROTOCOLS)}, got {self.group_protocol!r}")
        if not 1 <= self.partitions <= 1000:
            raise ConfigError(f"partitions must be in 1..1000, got {self.partitions}")
        if not 4096 <= self.dlq_max_bytes <= 990_000:
            raise ConfigError(f"DLQ record cap must be in 4096..990000 bytes (producer limit 1000000), got {self.dlq_max_bytes}")
        topics = (self.features_topic, self.scores_topic, self.dlq_topic)
        if len(set(topics)) != 3 or not all(topics):
            raise ConfigError(f"features, scores and DLQ topics must be distinct and non-empty: {topics}")


    def _check_security(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"kafka security protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, got {self.security_protocol!r}")
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigError(f"kafka SASL mechanism must be one of {', '.join(SASL_MECHANISMS)}, got {self.sasl_mechanism!r}")
            if not self.sasl_username or not self.sasl_password:
                raise ConfigError(f"kafka security protocol {self.security_protocol} needs a SASL username and password")
        for what, location in (("CA", self.ssl_ca_location), ("certificate", self.ssl_certificate_location),
                               ("key", self.ssl_key_location)):
            if location and not Path(location).is_file():
                raise ConfigError(f"kafka TLS {what} file not found: {location}")

    def __repr__(self) -> str:  # never print a secret
        secret = {"sasl_password", "ssl_key_password"}
        shown = ", ".join(f"{f.name}={'***' if f.name in secret and getattr(self, f.name) else getattr(self, f.name)!r}"
                          for f in fields(self))
        return f"KafkaConfig({shown})"


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Redis connection and key behaviour (see the README for the key layout)."""

    url: str = "redis://127.0.0.1:6379/0"
    cache_ttl_s: int = 3600
    health_refresh_s: float = 1.0
    key_prefix: str = "se"
    socket_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        check_redis_url(self.url)
        if self.cache_ttl_s < 0:
            raise ConfigError("cache TTL must be >= 0 (0 disables the cache)")
        if not 0 < self.health_refresh_s <= 2.0:
            # The product promises a health change is seen within 2 s.
            raise ConfigError("health refresh must be in (0, 2] seconds")
        if not self.key_prefix or any(c in self.key_prefix for c in " {}:"):
            raise ConfigError(f"redis key prefix must be non-empty without spaces, braces or colons, got {self.key_prefix!r}")
        if self.socket_timeout_s <= 0:
            raise ConfigError("redis socket timeout must be positive")

    def __repr__(self) -> str:  # never print the password
        return f"RedisConfig(url={redact_url(self.url)!r}, cache_ttl_s={self.cache_ttl_s}, key_prefix={self.key_prefix!r})"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the worker serves."""

    registry: Path = Path("var/registry")
    ensemble: str = "default"
    explain: str = "summary"
    # Input contract (README, Topics and contracts): the highest level an event may ask for
    # (full costs ~8x summary) and the least share of known, non-null features.
    max_explain: str = "summary"
    min_known_share: float = 0.5
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    deploy_poll_s: float = 0.5
    # Faults (README, Faults): a member call past the deadline is dropped for its batch; a
    # member failing whole batches this many times in a row is skipped for the cool-down.
    member_deadline_s: float = 1.0
    breaker_failures: int = 3
    breaker_cooldown_s: float = 30.0
    fallback: str = "prior"

    def __post_init__(self) -> None:
        if not 0 <= self.member_deadline_s <= 60 or not 0 <= self.breaker_failures <= 1000 or self.breaker_cooldown_s <= 0:
            raise ConfigError("member deadline must be in [0, 60] s (0: none), breaker failures in 0..1000 (0: no breaker), "
                              f"breaker cool-down > 0 s; got {self.member_deadline_s}, {self.breaker_failures}, {self.breaker_cooldown_s}")
        if self.fallback not in ("prior", "dlq"):
            raise ConfigError(f"fallback must be prior or dlq, got {self.fallback!r}")
        if not 0 <= self.deploy_poll_s <= 1.0:
            # The product promises a deploy is seen within 1 s; 0 turns the watch off.
            raise ConfigError(f"deploy poll must be in [0, 1] seconds (0: do not watch), got {self.deploy_poll_s}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics port must be in 0..65535 (0: no metrics server), got {self.metrics_port}")
        if self.metrics_port:
            check_host_port(f"{self.metrics_host}:{self.metrics_port}", "metrics address")
        if self.explain not in EXPLAIN_LEVELS or self.max_explain not in EXPLAIN_LEVELS:
            raise ConfigError(f"explain levels must be one of {', '.join(EXPLAIN_LEVELS)}, got {self.explain!r}, max {self.max_explain!r}")
        if not 0.0 <= self.min_known_share <= 1.0:
            raise ConfigError(f"minimum known-feature share must be in [0, 1], got {self.min_known_share}")
        if not self.ensemble:
            raise ConfigError("ensemble name must not be empty")


AB_METRICS = ("accuracy", "log_loss", "brier")
GUARDRAIL_TESTS = ("one-sided", "two-sided")  # core.experiments.guardrail.GUARDRAIL_TESTS (config stays import-light)


@dataclass(frozen=True, slots=True)
class ABConfig:
    """Experiments: the outcome join (``ab evaluate``), its topics, the guardrail and the ramp."""

    outcomes_topic: str = "outcomes"
    shadow_topic: str = "scores.shadow"
    outcomes_dlq_topic: str = "outcomes.dlq"
    app_id: str = "stream-ensemble-ab"
    join_window_s: float = 300.0
    metric: str = "accuracy"
    alpha: float = 0.05
    min_outcomes: int = 200
    outcomes_per_step: int = 500
    refresh_s: float = 1.0
    guardrail_test: str = "one-sided"
    # ab evaluate's partition watchdog (ab/watchdog.py): seconds an input partition may have
    # unread records while nothing of it is read, queued or processed before it is sought back
    # to its committed offset; 0 turns the watchdog off
    stall_s: float = 5.0

    def __post_init__(self) -> None:
        names = (self.outcomes_topic, self.shadow_topic, self.outcomes_dlq_topic, self.app_id)
        if not all(names) or len(set(names[:3])) != 3:
            raise ConfigError(f"outcomes, shadow and outcomes DLQ topics and the app id must be distinct and non-empty: {names}")
        if not self.join_window_s > 0:
            raise ConfigError(f"join window must be > 0 seconds, got {self.join_window_s}")
        if self.metric not in AB_METRICS:
            raise ConfigError(f"experiment metric must be one of {', '.join(AB_METRICS)}, got {self.metric!r}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"experiment alpha must be in (0, 1), got {self.alpha}")
        if self.min_outcomes < 0 or self.outcomes_per_step < 1:
            raise ConfigError("guardrail min outcomes must be >= 0 and outcomes per ramp step >= 1")
        if self.guardrail_test not in GUARDRAIL_TESTS:
            raise ConfigError(f"guardrail test must be one of {', '.join(GUARDRAIL_TESTS)}, got {self.guardrail_test!r}")
        if not 0 < self.refresh_s <= 1.0:
            # The product promises an experiment change in Redis is seen within 1 s.
            raise ConfigError(f"experiment refresh must be in (0, 1] seconds, got {self.refresh_s}")
        if not self.stall_s >= 0:
            raise ConfigError(f"partition stall timeout must be >= 0 seconds (0: watchdog off), got {self.stall_s}")


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of one worker process."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    ab: ABConfig = field(default_factory=ABConfig)
