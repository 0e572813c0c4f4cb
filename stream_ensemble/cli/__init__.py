"""The ``stream-ensemble`` command line (the only composition root besides tests).

Exit codes: 0 success, 1 runtime failure (server unreachable, lost events...), 2 bad usage
or configuration. Errors print one line on stderr, never a traceback (``--debug`` shows it).

One module per command group; this one only assembles them under :func:`main`.
"""

from __future__ import annotations

import click

from stream_ensemble.cli.common import Group, setup_logging
from stream_ensemble.cli.demo import demo, produce_demo
from stream_ensemble.cli.health import health
from stream_ensemble.cli.serve import serve
from stream_ensemble.cli.topics import topics
from stream_ensemble.cli.train import train


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True)
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]), show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="stream-ensemble")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str, debug: bool) -> None:
    """Serve a selected, calibrated ensemble of many models on a Kafka stream."""
    ctx.obj = {"debug": debug}
    setup_logging(log_level, log_format)


for command in (train, serve, topics, health, demo, produce_demo):
    main.add_command(command)


def _add_bench() -> None:
    try:
        from stream_ensemble.cli.bench import bench
    except ImportError:  # the bench extra (matplotlib, deslib) is not installed
        return
    main.add_command(bench)


_add_bench()

if __name__ == "__main__":
    main()
