"""The settings table: each setting's config-file key, environment variable, CLI flag and help.

The CLI builds its options from :data:`SETTINGS` (``cli.common.setting_option``), so ``--help``
shows every variable.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    Setting("kafka.session_timeout_s", "SE_SESSION_TIMEOUT_S", "--session-timeout-s", "Seconds before the group gives a silent worker's partitions to the others (failover after kill -9); classic protocol only."),
    Setting("kafka.group_protocol", "SE_GROUP_PROTOCOL", "--group-protocol", "Consumer group protocol: consumer (KIP-848, brokers >= 4.0; session timeout set on the broker; an older broker gets classic), or classic."),
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
    Setting("worker.max_explain", "SE_MAX_EXPLAIN", "--max-explain", "Highest explanation level an event's explain field may ask for."),
    Setting("worker.min_known_share", "SE_MIN_KNOWN_SHARE", "--min-known-share", "Least share of the ensemble's features an event must give, non-null (else DLQ, too_few_features)."),
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
    Setting("ab.guardrail_test", "SE_AB_GUARDRAIL_TEST", "--guardrail-test", "Guardrail test: one-sided (sequential p that the challenger is worse < alpha) or two-sided (the report's confidence sequence wholly on the worse side)."),
    Setting("ab.refresh_s", "SE_AB_REFRESH_S", "--ab-refresh-s", "Seconds between reads of the se:ab:* experiments (at most 1)."),
    Setting("ab.stall_s", "SE_AB_STALL_S", "--stall-s", "Seconds an input partition of ab evaluate may lag with nothing of it read or in flight before the watchdog seeks it to its committed offset (0: off)."),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}
