"""Checks of broker and Redis addresses, and their redaction for messages.

Used by :mod:`stream_ensemble.config` to refuse a bad address at start-up with one clear line,
and by the adapters to name a server in an error without printing its password.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from stream_ensemble.errors import ConfigError

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


def check_host_port(address: str, what: str) -> None:
    """Raise :class:`ConfigError` unless ``address`` is ``host:port`` (IPv6 as ``[::1]:port``)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {address!r} is not host:port")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{what}: port of {address!r} must be a number in 1..65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ConfigError(f"{what}: {host!r} is not an IPv6 address") from None
    elif not _HOST.match(host):
        raise ConfigError(f"{what}: {host!r} is not a valid host name or address")


def check_bootstrap(bootstrap: str) -> None:
    """Raise :class:`ConfigError` unless ``bootstrap`` is a comma-separated host:port list.

    A ``SCHEME://`` prefix per address (``SASL_SSL://host:9093``) is accepted, as librdkafka does.
    """
    if not bootstrap.strip():
        raise ConfigError("kafka bootstrap servers must not be empty")
    for part in bootstrap.split(","):
        address = part.strip()
        if "://" in address:
            address = address.split("://", 1)[1]
        check_host_port(address, "kafka bootstrap")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_redis_url(url: str) -> None:
    """Raise :class:`ConfigError` unless ``url`` is a usable Redis URL."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"redis url {shown!r}: {exc}") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(f"redis url must start with {', '.join(s + '://' for s in REDIS_SCHEMES)}, got {shown!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"redis url {shown!r} names no socket path")
        return
    if parts.scheme == "redis+sentinel":
        # redis+sentinel://host:26379[,host:26379...]/<service name>[/db]
        for address in parts.netloc.rsplit("@", 1)[-1].split(","):
            check_host_port(address if ":" in address else f"{address}:26379", "redis sentinel")
        service, _, db = parts.path.lstrip("/").partition("/")
        if not service:
            raise ConfigError(f"redis url {shown!r}: a sentinel URL names the service, redis+sentinel://host:26379/mymaster/0")
        if db and not db.isdigit():
            raise ConfigError(f"redis url {shown!r}: database must be a number, got {db!r}")
        return
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"redis url {shown!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"redis url {shown!r} names no host")
    check_host_port(f"{parts.hostname if ':' not in parts.hostname else '[' + parts.hostname + ']'}:{port or 6379}", "redis url")
    db = parts.path.lstrip("/")
    if parts.scheme.endswith("+cluster") and db not in ("", "0"):
        raise ConfigError(f"redis url {shown!r}: a Redis Cluster has only database 0")
    if db and not db.isdigit():
        raise ConfigError(f"redis url {shown!r}: database must be a number, got {db!r}")
