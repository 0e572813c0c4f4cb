"""Building a :class:`Config`: overrides > environment > config file > defaults."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from stream_ensemble.addresses import redact_url
from stream_ensemble.config.sections import ABConfig, Config, KafkaConfig, RedisConfig, WorkerConfig
from stream_ensemble.config.settings import SETTINGS
from stream_ensemble.errors import ConfigError

SECTIONS = {"kafka": KafkaConfig, "redis": RedisConfig, "worker": WorkerConfig, "ab": ABConfig}


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
