"""The ``stream-ensemble`` command line (the only composition root besides tests).

Exit codes: 0 success, 1 runtime failure (server unreachable, lost events...), 2 bad usage
or configuration. Errors print one line on stderr, never a traceback (``--debug`` shows it).

One module per command group; this one only assembles them under :func:`main`.
"""

from __future__ import annotations

from pathlib import Path

import click

from stream_ensemble.cli.ab import ab
from stream_ensemble.cli.common import Group, setup_logging
from stream_ensemble.cli.datasets import datasets
from stream_ensemble.cli.demo import demo, produce_demo
from stream_ensemble.cli.deploy import deploy
from stream_ensemble.cli.distill import distill
from stream_ensemble.cli.ensemble import ensemble
from stream_ensemble.cli.health import health
from stream_ensemble.cli.models import models
from stream_ensemble.cli.registry import registry, trust_pickle_option
from stream_ensemble.cli.serve import serve
from stream_ensemble.cli.status import status
from stream_ensemble.cli.topics import topics
from stream_ensemble.cli.train import train


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                                          "auto_envvar_prefix": "SE"})
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), envvar="SE_CONFIG",
              show_envvar=True, default=None, help="TOML config file ([kafka], [redis], [worker]); flags and variables win over it.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True,
              envvar="SE_LOG_LEVEL", show_envvar=True)
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]), show_default=True,
              envvar="SE_LOG_FORMAT", show_envvar=True, help="json: every line on stderr is one JSON object.")
@click.option("--debug", is_flag=True, envvar="SE_DEBUG", show_envvar=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="stream-ensemble")
@trust_pickle_option
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, log_level: str, log_format: str, debug: bool) -> None:
    """Serve a selected, calibrated ensemble of many models on a Kafka stream.

    Every setting is, in order of precedence, a flag, an environment variable (shown in each
    command's --help), a key in the --config file, or its default.
    """
    ctx.obj = {"debug": debug, "config": config_file, "log_format": log_format}
    setup_logging(log_level, log_format)


for command in (train, distill, models, ensemble, serve, status, topics, health, deploy, ab, demo, produce_demo, datasets,
                registry):
    main.add_command(command)


def _add_bench() -> None:
    try:
        from stream_ensemble.cli.bench import bench
    except ImportError:  # the bench extra (matplotlib, deslib) is not installed
        return
    main.add_command(bench)


_add_bench()


def _show_envvars(command: click.Command) -> None:
    """Every option shows its environment variable in --help (explicit ones from config.SETTINGS,
    the others ``SE_<COMMAND>_<OPTION>`` through click's auto_envvar_prefix)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _show_envvars(sub)


_show_envvars(main)

if __name__ == "__main__":
    main()
