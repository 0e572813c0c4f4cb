"""What every command shares: one-line errors with the documented exit codes, logging, threads."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import orjson

from stream_ensemble.errors import ConfigError, StreamEnsembleError


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (structured logs for machines and humans with jq)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr in ``json`` or ``text`` format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Group(click.Group):
    """Turns project errors into one clear line and the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except StreamEnsembleError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # third-party failures: still one line (--debug for the traceback)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)


def pin_threads() -> None:
    # Library-default OpenMP/BLAS threading swings timings 10x on small machines; one
    # thread per process, scale with processes in the consumer group.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
