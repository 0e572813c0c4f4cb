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

from stream_ensemble.config.loading import (
    SECRETS,
    SECTIONS,
    load_config,
    read_config_file,
    redacted,
    setting_default,
)
from stream_ensemble.config.sections import (
    AB_METRICS,
    EXPLAIN_LEVELS,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    ABConfig,
    Config,
    KafkaConfig,
    RedisConfig,
    WorkerConfig,
)
from stream_ensemble.config.settings import SETTINGS, SETTINGS_BY_KEY, Setting

__all__ = [
    "AB_METRICS", "EXPLAIN_LEVELS", "SASL_MECHANISMS", "SECRETS", "SECTIONS", "SECURITY_PROTOCOLS",
    "SETTINGS", "SETTINGS_BY_KEY", "ABConfig", "Config", "KafkaConfig", "RedisConfig", "Setting",
    "WorkerConfig", "load_config", "read_config_file", "redacted", "setting_default",
]
