"""``stream-ensemble distill NAME@vN``: one fast student as a new, servable ensemble version."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from stream_ensemble.cli.common import config_from, pin_threads, setting_option
from stream_ensemble.errors import ConfigError


def _teacher(registry: Path, tag: str) -> tuple[str, int]:
    """``NAME@vN`` -> (name, version), refusing (exit 2) a malformed tag or a missing version."""
    from stream_ensemble.core.registry import Registry

    name, sep, v = tag.rpartition("@v")
    if not sep or not name or not v.isdigit():
        raise ConfigError(f"expected NAME@vN (e.g. default@v3), got {tag!r}")
    versions = Registry(registry).versions("ensembles", name)
    if not versions:
        raise ConfigError(f"no ensemble {name!r} in registry {registry} (run `stream-ensemble train`)")
    if int(v) not in versions:
        raise ConfigError(f"ensemble {name} has no version v{v} in registry {registry}; versions: "
                          + ", ".join(f"{name}@v{x}" for x in versions))
    return name, int(v)


def _data(registry: Path, name: str, version: int, data: str | None, label: str | None, positive: str | None,
          no_header: bool) -> Any:
    """The teacher's training data: ``--data`` (bundled name or CSV), default the manifest's bundled dataset."""
    from stream_ensemble.core import data as datamod
    from stream_ensemble.core.data.datasets import BUNDLED
    from stream_ensemble.core.registry import Registry

    trained_on = str(Registry(registry).manifest("ensembles", name, version).get("dataset", ""))
    source = data or trained_on
    if source in BUNDLED and not Path(source).is_file():
        if label or positive:
            raise ConfigError("--label/--positive only apply to a CSV --data")
        return datamod.load_bundled(source)
    if data is None:
        raise ConfigError(f"{name}@v{version} was trained on {trained_on!r}, not a bundled dataset: "
                          "pass its CSV with --data FILE --label COLUMN")
    if not label:
        raise ConfigError("a CSV --data needs --label COLUMN")
    return datamod.load_csv(data, label, positive, header=not no_header)


def _fmt(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, float) else "n/a (teacher no better than best single)"


@click.command()
@click.argument("tag", metavar="NAME@vN")
@click.option("--student", default="lightgbm", show_default=True, type=click.Choice(["lightgbm", "hist_gb"]),
              help="Student family, fit to the ensemble's out-of-fold probabilities.")
@click.option("--data", default=None, metavar="NAME|CSV",
              help="The ensemble's training data: a bundled dataset name or a CSV (default: the bundled dataset "
                   "named in its manifest). Checked against the manifest's data fingerprint.")
@click.option("--label", help="Label column of a CSV --data.")
@click.option("--positive", help="Positive class value of --label (as given to train).")
@click.option("--no-header", is_flag=True, help="The CSV has no header row (columns are c0, c1, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's distillation block as JSON.")
@setting_option("worker.registry")
@click.pass_context
def distill(ctx: click.Context, tag: str, student: str, data: str | None, label: str | None, positive: str | None,
            no_header: bool, as_json: bool, registry: Path | None) -> None:
    """Fit one fast student to NAME@vN and register it as a new version of NAME.

    The student learns the ensemble's out-of-fold probabilities on its fit rows, is calibrated on
    its calibration rows, and is compared with the ensemble and its best single member on the
    holdout rows (log loss, accuracy, cost per call and per 1,000 rows). The new version is an
    ordinary one-member ensemble: `deploy NAME@vM` or `ab start NAME --challenger NAME@vM`.
    """
    import orjson

    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training.distill_pipeline import distill as run_distill

    pin_threads()
    root = config_from(ctx, worker__registry=registry).worker.registry
    name, version = _teacher(root, tag)
    dataset = _data(root, name, version, data, label, positive, no_header)
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    result = run_distill(Registry(root), name, version, dataset, student=student, progress=say)
    s = result.summary
    if as_json:
        doc = {"ensemble": f"{result.ensemble}@v{result.version}", "student_model": result.student_model, **s}
        click.echo(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("NaN", "null"))
        return
    click.echo(f"\n{result.teacher} distilled into {result.ensemble}@v{result.version} "
               f"(student {result.student_model}, {s['student']['rounds']} rounds, {s['test_rows']} holdout rows)")
    click.echo(f"{'':<28}{'log loss':>10}{'accuracy':>10}{'ms/call':>10}{'ms/1k rows':>12}")
    best = s["test"]["best_single"]["member"]
    for key, label_ in (("teacher", f"teacher {result.teacher}"), ("best_single", f"best single ({best})"),
                        ("student", f"student ({s['student']['kind']})")):
        t, c = s["test"][key], s["cost"][key]
        click.echo(f"{label_:<28}{_fmt(t.get('log_loss'), '.4f'):>10}{_fmt(t.get('accuracy'), '.3f'):>10}"
                   f"{_fmt(c['call_ms'], '.3f'):>10}{_fmt(c['ms_per_1k'], '.2f'):>12}")
    click.echo(f"kept share of the teacher's log-loss gain over best single: {_pct(s['kept_share'])}"
               f"   cost ratio student/teacher: {_fmt(s['cost_ratio'], '.3f')}   (load {s['load_average']:.1f})")
