"""Structured logs: extra fields, librdkafka repeat suppression, Python warnings captured."""

from __future__ import annotations

import logging
import subprocess
import sys

import orjson

from stream_ensemble.cli.logs import JsonFormatter, RepeatFilter, TextFormatter


def _record(name: str, msg: str, created: float = 0.0, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.INFO, __file__, 1, msg, None, None)
    rec.created = created
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_line_carries_extra_fields() -> None:
    line = JsonFormatter().format(_record("stream_ensemble", "progress", stats={"scored": 3}, event="progress"))
    doc = orjson.loads(line)
    assert doc["msg"] == "progress" and doc["stats"] == {"scored": 3} and doc["event"] == "progress"
    assert "stats=" in TextFormatter().format(_record("x", "progress", stats={"scored": 3}))


def test_repeated_librdkafka_lines_are_held_back_and_counted() -> None:
    f = RepeatFilter(window_s=10)
    msg = "FAIL [rdkafka#producer-1] 127.0.0.1:1/bootstrap: Connect failed: Connection refused (after {}ms in state CONNECT)"
    passed = [f.filter(_record("librdkafka.admin", msg.format(i), created=i * 0.01)) for i in range(100)]
    assert sum(passed) == 1
    later = _record("librdkafka.admin", msg.format(5), created=11.0)
    assert f.filter(later) and later.repeated == 99  # type: ignore[attr-defined]
    assert all(f.filter(_record("stream_ensemble", "same", created=0.0)) for _ in range(3))  # ours never held back


def test_numpy_warnings_become_json_lines() -> None:
    # a fresh interpreter: the test runner's own warning capture would hide the real behaviour
    code = ("from stream_ensemble.cli.logs import setup_logging; setup_logging('info', 'json'); "
            "import numpy as np; np.array([1e308]) * 10.0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = [orjson.loads(x) for x in proc.stderr.splitlines()]
    assert lines and lines[0]["logger"] == "py.warnings" and "overflow" in lines[0]["msg"]
