"""Helpers the ``bench`` commands share: argument lists, the one-line usage error, progress-safe
logging, strict-JSON output files and the throughput benchmarks' data and registry."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import click

from stream_ensemble.bench.html_report import write_html
from stream_ensemble.errors import ConfigError


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


class BenchUsageError(click.ClickException):
    """A bad argument: click prints the single line ``Error: <message>`` and exits with 2.

    (``click.UsageError`` would add the usage and a help hint around it.)
    """

    exit_code = 2


def usage_error(exc: Exception) -> BenchUsageError:
    return BenchUsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


class TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def write_outputs(out: Path, result: dict[str, Any], markdown: str, render_png: Any, title: str) -> None:
    """``out`` (JSON), and next to it the Markdown, the PNG (``render_png(result, path)``) and the HTML page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n")
    out.with_suffix(".md").write_text(markdown)
    render_png(result, out.with_suffix(".png"))
    page = write_html(markdown, [out.with_suffix(".png")], out.with_suffix(".html"), title)
    click.echo(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}, {page}", err=True)


def throughput_data(data: str, label: str | None) -> Any:
    from stream_ensemble.core.data import load_csv
    from stream_ensemble.core.data.datasets import BUNDLED, load_bundled

    if data in BUNDLED:
        return load_bundled(data)
    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"--data {data!r} is neither a bundled dataset ({', '.join(BUNDLED)}) nor a CSV file")
    if label is None:
        raise ConfigError("a --data CSV needs --label (the label column)")
    return load_csv(path, label)


def ensure_ensemble(registry: Path, pool: str, data: str, label: str | None, dataset_name: str) -> None:
    """Train the ensemble on ``data`` into an empty ``registry``; refuse one trained on other data."""
    import subprocess

    from stream_ensemble.core.registry import Registry

    reg = Registry(registry)
    if not reg.versions("ensembles", "default"):
        source = ["--dataset", data] if label is None else ["--csv", data, "--label", label]
        click.echo(f"training the {pool} pool into {registry} ...", err=True)
        proc = subprocess.run([sys.executable, "-m", "stream_ensemble", "train", "--registry", str(registry),
                               "--pool", pool, *source], check=False, stdout=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ConfigError(f"training the {pool} pool into {registry} failed ({proc.returncode})")
    trained_on = reg.manifest("ensembles", "default").get("dataset")
    if trained_on != dataset_name:
        raise ConfigError(f"{registry} holds an ensemble trained on {trained_on!r}, not {dataset_name!r}; "
                          "pass another --registry / --large-registry")


def jsonable(x: Any) -> Any:
    """NaN / inf -> None and numpy scalars -> Python, so the file is strict JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
