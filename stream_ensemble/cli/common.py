"""What every command shares: one-line errors with the documented exit codes, settings, threads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from stream_ensemble.cli.logs import JsonFormatter, setup_logging
from stream_ensemble.errors import ConfigError, StreamEnsembleError

if TYPE_CHECKING:
    from stream_ensemble.config import Config

F = TypeVar("F", bound=Callable[..., Any])
__all__ = ["Group", "JsonFormatter", "config_from", "pin_threads", "setting_option", "setup_logging"]


class Group(click.Group):
    """Turns project errors into one clear line and the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _error(ctx, str(exc))
            ctx.exit(2)
        except StreamEnsembleError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _error(ctx, str(exc))
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # third-party failures: still one line (--debug for the traceback)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _error(ctx, f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
            ctx.exit(1)


def _error(ctx: click.Context, message: str) -> None:
    """The one error line: ``error: ...`` on stderr, or a JSON log object under --log-format json."""
    if ctx.obj and ctx.obj.get("log_format") == "json":
        logging.getLogger("stream_ensemble").error(message, extra={"event": "exit"})
    else:
        click.echo(f"error: {message}", err=True)


def pin_threads() -> None:
    # Library-default OpenMP/BLAS threading swings timings 10x on small machines; one
    # thread per process, scale with processes in the consumer group.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def setting_option(key: str, *aliases: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option for setting ``key`` (``section.field``) of :data:`config.SETTINGS`.

    The flag, environment variable (shown in ``--help``) and help text come from the table;
    the option's default is ``None`` so that an unset flag and variable fall through to the
    config file and then the built-in default (shown in ``--help``). ``aliases`` add older
    flag spellings, and a bare identifier among them names the parameter (default: from the
    flag, ``--redis-url`` -> ``redis_url``); ``kwargs`` go to :func:`click.option`
    (e.g. ``type=click.Choice(...)``).
    """
    from stream_ensemble.config import SETTINGS_BY_KEY, setting_default

    s = SETTINGS_BY_KEY[key]
    default = setting_default(key)
    if "type" not in kwargs and not isinstance(default, str):
        kwargs["type"] = click.Path(file_okay=False, path_type=Path) if isinstance(default, Path) else type(default)
    return click.option(
        s.flag, *aliases, envvar=s.env, show_envvar=True, default=None,
        show_default=str(default), help=s.help, **kwargs,
    )


def config_from(ctx: click.Context, **overrides: Any) -> Config:
    """The effective configuration: ``overrides`` (flags and variables, via click) > the
    ``--config`` file given to the top-level command > defaults."""
    from stream_ensemble.config import load_config

    root = ctx.find_root()
    config_file = root.obj.get("config") if isinstance(root.obj, dict) else None
    return load_config(config_file=config_file, **overrides)
