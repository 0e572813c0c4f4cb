"""Frozen configuration, built in one place.

Precedence, for every setting: CLI flag > environment variable > config file (TOML, given with
``--config`` or ``SE_CONFIG``) > default. :data:`SETTINGS` is the one table that names each
setting's config-file key (``section.field``), environment variable and CLI flag; the CLI
builds its options from it (``cli.common.setting_option``), so ``--help`` shows every variable.
Every value is checked in ``__post_init__`` so a bad setting fails at start-up with one clear
line (exit 2), not mid-stream.

Adding a setting: add a field (with its default) to the section's dataclass and a check in its
``__post_init__``, add one :class:`Setting` row to :data:`SETTINGS`, and decorate the command
with ``@setting_option("section.field")``. The README section "Configuration" lists them all
(``stream-ensemble config show`` prints the effective values and where each came from).

Config file example::

    [kafka]
    bootstrap = "10.0.0.5:9092"
    group_id = "scoring"

    [redis]
    url = "redis://10.0.0.6:6379/0"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from stream_ensemble.addresses import check_bootstrap, check_host_port, check_redis_url, redact_url
from stream_ensemble.errors import ConfigError

EXPLAIN_LEVELS = ("none", "summary", "full")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


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
        if self.explain not in EXPLAIN_LEVELS:
            raise ConfigError(f"explain level must be one of {', '.join(EXPLAIN_LEVELS)}, got {self.explain!r}")
        if not self.ensemble:
            raise ConfigError("ensemble name must not be empty")


AB_METRICS = ("accuracy", "log_loss", "brier")


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
        if not 0 < self.refresh_s <= 1.0:
            # The product promises an experiment change in Redis is seen within 1 s.
            raise ConfigError(f"experiment refresh must be in (0, 1] seconds, got {self.refresh_s}")


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of one worker process."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    ab: ABConfig = field(default_factory=ABConfig)


SECRETS = frozenset({"sasl_password", "ssl_key_password"})


def redacted(cfg: Config) -> dict[str, dict[str, Any]]:
    """Every setting of ``cfg`` as plain values, secrets as ``***`` (for logs and ``--json``)."""
    out: dict[str, dict[str, Any]] = {}
    for section in ("kafka", "redis", "worker", "ab"):
        part = getattr(cfg, section)
        values: dict[str, Any] = {}
        for f in fields(part):
            value = getattr(part, f.name)
            if f.name in SECRETS and value:
                value = "***"
            elif f.name == "url":
                value = redact_url(value)
            values[f.name] = str(value) if isinstance(value, Path) else value
        out[section] = values
    return out


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: config-file key ``section.name``, environment variable, CLI flag, help."""

    key: str
    env: str
    flag: str
    help: str

    @property
    def section(self) -> str:
        """Config section (``kafka``, ``redis``, ``worker``)."""
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        """Field name inside the section."""
        return self.key.split(".", 1)[1]


SETTINGS: tuple[Setting, ...] = (
    Setting("kafka.bootstrap", "SE_BOOTSTRAP", "--bootstrap", "Kafka bootstrap servers, host:port[,host:port...]."),
    Setting("kafka.group_id", "SE_GROUP_ID", "--group", "Kafka consumer group of the workers."),
    Setting("kafka.features_topic", "SE_FEATURES_TOPIC", "--features-topic", "Input topic of feature events."),
    Setting("kafka.scores_topic", "SE_SCORES_TOPIC", "--scores-topic", "Output topic of scored events."),
    Setting("kafka.dlq_topic", "SE_DLQ_TOPIC", "--dlq-topic", "Dead-letter topic for malformed events."),
    Setting("kafka.batch_size", "SE_BATCH_SIZE", "--batch-size", "Most events scored per batch."),
    Setting("kafka.poll_timeout_s", "SE_MAX_WAIT_S", "--max-wait-s", "Longest wait to fill a batch, seconds (latency vs batch size)."),
    Setting("kafka.delivery_timeout_s", "SE_DELIVERY_TIMEOUT_S", "--delivery-timeout-s", "Seconds an output may wait for its broker acknowledgement."),
    Setting("kafka.dlq_max_bytes", "SE_DLQ_MAX_BYTES", "--dlq-max-bytes", "Cap of one DLQ record, bytes (a longer original is truncated; size and sha256 kept)."),
    Setting("kafka.session_timeout_s", "SE_SESSION_TIMEOUT_S", "--session-timeout-s", "Seconds before the group gives a silent worker's partitions to the others (failover after kill -9)."),
    Setting("kafka.partitions", "SE_PARTITIONS", "--partitions", "Partitions when creating missing topics (and the count serve expects)."),
    Setting("kafka.security_protocol", "SE_KAFKA_SECURITY_PROTOCOL", "--kafka-security-protocol", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."),
    Setting("kafka.sasl_mechanism", "SE_KAFKA_SASL_MECHANISM", "--kafka-sasl-mechanism", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."),
    Setting("kafka.sasl_username", "SE_KAFKA_SASL_USERNAME", "--kafka-sasl-username", "SASL user name."),
    Setting("kafka.sasl_password", "SE_KAFKA_SASL_PASSWORD", "--kafka-sasl-password", "SASL password (prefer the variable: flags show in ps)."),
    Setting("kafka.ssl_ca_location", "SE_KAFKA_SSL_CA", "--kafka-ssl-ca", "CA bundle (PEM) to verify the brokers."),
    Setting("kafka.ssl_certificate_location", "SE_KAFKA_SSL_CERT", "--kafka-ssl-cert", "Client certificate (PEM) for mutual TLS."),
    Setting("kafka.ssl_key_location", "SE_KAFKA_SSL_KEY", "--kafka-ssl-key", "Client private key (PEM) for mutual TLS."),
    Setting("kafka.ssl_key_password", "SE_KAFKA_SSL_KEY_PASSWORD", "--kafka-ssl-key-password", "Password of the client key."),
    Setting("redis.url", "SE_REDIS_URL", "--redis-url", "Redis URL (redis://, rediss:// or unix://)."),
    Setting("redis.cache_ttl_s", "SE_CACHE_TTL_S", "--cache-ttl", "Prediction cache TTL seconds (0 disables the cache)."),
    Setting("redis.health_refresh_s", "SE_HEALTH_REFRESH_S", "--health-refresh-s", "Seconds between reads of the member health keys (at most 2)."),
    Setting("redis.key_prefix", "SE_KEY_PREFIX", "--key-prefix", "Prefix of every Redis key the project writes."),
    Setting("redis.socket_timeout_s", "SE_REDIS_TIMEOUT_S", "--redis-timeout-s", "Redis socket timeout, seconds."),
    Setting("worker.registry", "SE_REGISTRY", "--registry", "Model registry directory."),
    Setting("worker.ensemble", "SE_ENSEMBLE", "--ensemble", "Ensemble name in the registry."),
    Setting("worker.metrics_port", "SE_METRICS_PORT", "--metrics-port", "Serve /metrics, /healthz, /readyz on this port (0: off)."),
    Setting("worker.metrics_host", "SE_METRICS_HOST", "--metrics-host", "Address the metrics server binds (0.0.0.0 to expose it)."),
    Setting("worker.explain", "SE_EXPLAIN", "--explain", "Explanation level: none, summary or full."),
    Setting("worker.deploy_poll_s", "SE_DEPLOY_POLL_S", "--deploy-poll-s", "Seconds between reads of se:deploy:<ensemble> (hot deploy; 0: off)."),
    Setting("worker.member_deadline_s", "SE_MEMBER_DEADLINE_S", "--member-deadline-s", "Longest wait for one member on one batch, seconds (0: no deadline)."),
    Setting("worker.breaker_failures", "SE_BREAKER_FAILURES", "--breaker-failures", "Consecutive whole-batch failures that open a member's breaker (0: off)."),
    Setting("worker.breaker_cooldown_s", "SE_BREAKER_COOLDOWN_S", "--breaker-cooldown-s", "Seconds an open breaker waits before a half-open probe."),
    Setting("worker.fallback", "SE_FALLBACK", "--fallback", "An event no member could score: prior (confidence 0, flagged) or dlq."),
    Setting("ab.outcomes_topic", "SE_OUTCOMES_TOPIC", "--outcomes-topic", "Topic of outcome events (true labels)."),
    Setting("ab.shadow_topic", "SE_SHADOW_TOPIC", "--shadow-topic", "Topic of shadow arms' scored events."),
    Setting("ab.outcomes_dlq_topic", "SE_OUTCOMES_DLQ_TOPIC", "--outcomes-dlq-topic", "Dead-letter topic for malformed outcomes."),
    Setting("ab.app_id", "SE_AB_APP_ID", "--app-id", "faust app id of the outcome join (its consumer group and table topics)."),
    Setting("ab.join_window_s", "SE_AB_JOIN_WINDOW_S", "--join-window-s", "Seconds a score waits for its outcome (and an outcome for its score)."),
    Setting("ab.metric", "SE_AB_METRIC", "--ab-metric", "Metric the guardrail and winner use: accuracy, log_loss or brier."),
    Setting("ab.alpha", "SE_AB_ALPHA", "--alpha", "Level of the intervals, the confidence sequence and the guardrail."),
    Setting("ab.min_outcomes", "SE_AB_MIN_OUTCOMES", "--min-outcomes", "Challenger outcomes joined before the guardrail may stop it."),
    Setting("ab.outcomes_per_step", "SE_AB_OUTCOMES_PER_STEP", "--outcomes-per-step", "Challenger outcomes joined per canary ramp step."),
    Setting("ab.refresh_s", "SE_AB_REFRESH_S", "--ab-refresh-s", "Seconds between reads of the se:ab:* experiments (at most 1)."),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}
SECTIONS = {"kafka": KafkaConfig, "redis": RedisConfig, "worker": WorkerConfig, "ab": ABConfig}


def setting_default(key: str) -> Any:
    """The built-in default of setting ``key`` (``section.name``)."""
    section, name = key.split(".", 1)
    return getattr(SECTIONS[section](), name)


def read_config_file(path: Path) -> dict[str, dict[str, Any]]:
    """Parse a TOML config file into ``{section: {name: value}}``.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, or an unknown section/key (typos are errors, not ignored).
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    out: dict[str, dict[str, Any]] = {}
    for section, table in doc.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"config file {path}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        known = {f.name for f in fields(SECTIONS[section])}
        for name in table:
            if name not in known:
                raise ConfigError(f"config file {path}: unknown key {section}.{name}")
        out[section] = dict(table)
    return out


def load_config(env: Mapping[str, str] | None = None, config_file: Path | str | None = None,
                **overrides: Any) -> Config:
    """Build the configuration: overrides > environment > config file > defaults.

    Parameters
    ----------
    env : mapping, optional
        Environment (default ``os.environ``); only the variables in :data:`SETTINGS` are read
        (and ``SE_CONFIG`` when ``config_file`` is not given).
    config_file : path, optional
        TOML file with ``[kafka]``, ``[redis]``, ``[worker]`` tables.
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
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    path = config_file if config_file is not None else source.get("SE_CONFIG") or None
    if path is not None:
        for section, table in read_config_file(Path(path)).items():
            values[section].update(table)
    for s in SETTINGS:
        if s.env in source:
            values[s.section][s.name] = source[s.env]
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
        ab=_build(base.ab, values["ab"]),
    )


def _build(default: Any, values: dict[str, Any]) -> Any:
    types = {f.name: type(getattr(default, f.name)) for f in fields(default)}
    converted: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in types:
            raise ConfigError(f"unknown setting {type(default).__name__}.{name}")
        kind = types[name]
        try:
            if isinstance(raw, kind):
                converted[name] = raw
            elif kind is bool:
                converted[name] = _to_bool(raw)
            elif kind is int and isinstance(raw, float):
                raise ValueError(raw)
            else:
                converted[name] = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {kind.__name__}, got {raw!r}") from None
    return replace(default, **converted)


def _to_bool(raw: Any) -> bool:
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)
