"""Logging for every command: stderr, ``text`` or ``json`` (one JSON object per line).

Under ``json`` nothing bypasses the format: librdkafka's lines arrive through the Python
loggers the Kafka adapters pass to confluent-kafka (``librdkafka.*``), Python warnings (numpy's
RuntimeWarnings included) through :func:`logging.captureWarnings`, and structured values given
with ``extra={...}`` become fields of the object rather than text in the message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of ``record``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: ts, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = record_fields(record)
        if extra:
            line += " " + " ".join(f"{k}={orjson.dumps(v, default=str).decode()}" for k, v in extra.items())
        return line


class RepeatFilter(logging.Filter):
    """Lets a librdkafka line through once per ``window_s``: an unreachable broker makes
    librdkafka repeat the same failure many times a second (hundreds of lines per start-up).
    The next line let through after a quiet spell carries ``repeated`` (how many were held back).
    """

    def __init__(self, prefix: str = "librdkafka", window_s: float = 10.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.window_s = window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        # the same failure differs only in its "(after 301ms in state ...)" tail
        key = record.getMessage().split(" (after ", 1)[0]
        last, held = self._seen.get(key, (float("-inf"), 0))
        if record.created - last < self.window_s:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (record.created, 0)
        if held:
            record.repeated = held
        return True


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr in ``json`` or ``text`` format; route Python warnings into the logs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
