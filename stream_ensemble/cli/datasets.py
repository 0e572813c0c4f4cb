"""``stream-ensemble datasets``: where the benchmark datasets are, fetch and verify them."""

from __future__ import annotations

from pathlib import Path

import click

_DIR_HELP = "Datasets folder (default: $SE_DATA_DIR, else the user cache ~/.cache/stream-ensemble/datasets)."


@click.group("datasets")
def datasets() -> None:
    """The real datasets the benchmarks read (checksummed)."""


@datasets.command("verify")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DIR_HELP)
def verify_cmd(data_dir: Path | None) -> None:
    """Check every dataset file's sha256; exit 1 if any is missing or differs."""
    from stream_ensemble.bench.data_files import default_data_dir, verify

    folder = data_dir or default_data_dir()
    states = verify(folder)
    for name, state in states.items():
        click.echo(f"{state:18s} {name}")
    good = sum(s == "ok" for s in states.values())
    click.echo(f"{good}/{len(states)} files ok in {folder}")
    if good != len(states):
        raise SystemExit(1)


@datasets.command("fetch")
@click.option("--from", "source", required=True, envvar="SE_DATASETS_URL", show_envvar=True,
              help="Mirror URL prefix holding the files by name (https://, http:// or file://).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DIR_HELP)
def fetch_cmd(source: str, data_dir: Path | None) -> None:
    """Download the dataset files into the datasets folder, keeping only verified ones."""
    from stream_ensemble.bench.data_files import SHA256, default_data_dir, fetch

    folder = data_dir or default_data_dir()
    done = 0

    def progress(name: str, state: str) -> None:
        nonlocal done
        done += 1
        click.echo(f"[{done}/{len(SHA256)}] {name}: {state}")

    states = fetch(source, folder, progress)
    good = sum(s in ("present", "fetched") for s in states.values())
    click.echo(f"{good}/{len(states)} files verified in {folder}")
    if good != len(states):
        raise SystemExit(1)
