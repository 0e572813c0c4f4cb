"""``stream-ensemble models add | list | show``: members a user trained elsewhere, in the registry.

\b
stream-ensemble models add churn_xgb --file xgb.ubj --features-from holdout.csv --label churned \\
    --positive yes --holdout holdout.csv
stream-ensemble models list
stream-ensemble models show churn_xgb@v1 --json
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import orjson

from stream_ensemble.cli.common import config_from, pin_threads, setting_option
from stream_ensemble.errors import ConfigError


def registry_root(ctx: click.Context, registry: Path | None) -> Path:
    """The registry directory: flag / ``SE_REGISTRY`` / config file / default."""
    return config_from(ctx, worker__registry=registry).worker.registry


def emit_json(doc: Any) -> None:
    """One JSON document on stdout (NaN never written: manifests keep only finite metrics)."""
    click.echo(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def fmt(x: Any, spec: str) -> str:
    """``x`` formatted, or ``-`` when absent or not finite."""
    return format(x, spec) if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def load_holdout(holdout: Path, label: str, positive: str | None) -> Any:
    """The holdout CSV as a Dataset (label and positive class checked: exit 2 on a bad one)."""
    from stream_ensemble.core.data.datasets import load_csv

    return load_csv(holdout, label, positive)


def _feature_list(features: str | None, features_from: Path | None, label: str) -> list[str]:
    if (features is None) == (features_from is None):
        raise ConfigError("give exactly one of --features a,b,... and --features-from CSV")
    if features is not None:
        return [f.strip() for f in features.split(",") if f.strip()]
    assert features_from is not None
    if not features_from.is_file():
        raise ConfigError(f"--features-from file not found: {features_from}")
    import csv

    with features_from.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])  # quoted names may hold commas
    return [c.strip() for c in header if c.strip() and c.strip() != label]


def _show_tag(tag: str) -> tuple[str, int | None]:
    name, sep, v = tag.rpartition("@v")
    if not sep:
        return tag, None
    if not v.isdigit() or not name:
        raise ConfigError(f"expected NAME or NAME@vN, got {tag!r}")
    return name, int(v)


def manifest_of(root: Path, kind: str, tag: str) -> dict[str, Any]:
    """The manifest of ``NAME[@vN]`` (default latest) of ``kind``, or a ConfigError naming the versions."""
    from stream_ensemble.core.registry import Registry

    name, version = _show_tag(tag)
    reg = Registry(root)
    versions = reg.versions(kind, name)
    what = "model" if kind == "models" else "ensemble"
    if not versions:
        raise ConfigError(f"no {what} named {name!r} in registry {root}")
    if version is not None and version not in versions:
        raise ConfigError(f"unknown {what} version {name}@v{version}; versions: "
                          + ", ".join(f"{name}@v{x}" for x in versions))
    return reg.manifest(kind, name, version)


def all_manifests(root: Path, kind: str) -> list[dict[str, Any]]:
    """Every version's manifest of ``kind``, by name then version."""
    from stream_ensemble.core.registry import Registry

    reg = Registry(root)
    return [reg.manifest(kind, n, v) for n in reg.names(kind) for v in reg.versions(kind, n)]


@click.group()
def models() -> None:
    """Register models you trained yourself (skops, XGBoost, LightGBM) and look at members."""


@models.command("add")
@click.argument("name")
@click.option("--file", "file_", required=True, type=click.Path(dir_okay=False, path_type=Path),
              envvar="SE_MODELS_ADD_FILE",
              help="The fitted model: scikit-learn estimator/pipeline saved with skops.io.dump (.skops), "
                   "XGBoost save_model (.json/.ubj) or LightGBM Booster.save_model (.txt).")
@click.option("--format", "model_format", type=click.Choice(["skops", "xgboost", "lightgbm"]), default=None,
              envvar="SE_MODELS_ADD_FORMAT",
              help="Model file format (default: from the extension).")
@click.option("--features", default=None, help="The model's input columns in its order, comma-separated.")
@click.option("--features-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the feature list from this CSV's header (every column but --label).")
@click.option("--holdout", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled CSV rows the model never saw: it is checked, scored and timed on them.")
@click.option("--label", required=True, help="Label column of --holdout.")
@click.option("--positive", default=None, help="Positive class value of a binary label (default: the rarer).")
@click.option("--json", "as_json", is_flag=True, help="Print the new member's manifest as JSON.")
@setting_option("worker.registry")
@click.pass_context
def add(ctx: click.Context, name: str, file_: Path, model_format: str | None, features: str | None, features_from: Path | None,
        holdout: Path, label: str, positive: str | None, as_json: bool, registry: Path | None) -> None:
    """Register the fitted model in FILE as the next version of member NAME.

    The file is read without running code (a skops file with types outside numpy, scipy and
    scikit-learn is refused unread), checked to predict probabilities on every holdout row,
    timed per call and per row, and scored on the holdout.
    """
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training.byom import add_member

    pin_threads()
    root = registry_root(ctx, registry)
    names = _feature_list(features, features_from, label)
    data = load_holdout(holdout, label, positive)
    m = add_member(Registry(root), name, file_, data, names, model_format)
    if as_json:
        emit_json(m)
        return
    mt, c = m["metrics"], m["cost"]
    click.echo(f"added {m['id']}@v{m['version']} ({m['source']['format']} {m['source']['type']}, "
               f"{len(m['features'])} features, classes {m['classes']}): holdout {m['holdout']['rows']} rows "
               f"log loss {fmt_(mt, 'log_loss', '.4f')} accuracy {fmt_(mt, 'accuracy', '.3f')}; cost "
               f"{c['call_ms']:.3f} ms/call, {c['row_us']:.2f} us/row, {c['ms_per_1k']:.2f} ms/1k rows")


def fmt_(d: dict[str, Any], key: str, spec: str) -> str:
    """``d[key]`` formatted, ``-`` when absent."""
    return fmt(d.get(key), spec)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of every member version.")
@setting_option("worker.registry")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, registry: Path | None) -> None:
    """Every member version: family, source format, holdout metrics and cost."""
    rows = [{"member": f"{m['id']}@v{m['version']}", "family": m.get("family"),
             "format": (m.get("source") or {}).get("format", "trained"), "features": len(m.get("features") or []),
             "metrics": m.get("metrics") or {}, "call_ms": m.get("call_ms"), "ms_per_1k": m.get("cost_ms_per_1k")}
            for m in all_manifests(registry_root(ctx, registry), "models")]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'member':<28}{'family':<22}{'format':<10}{'log loss':>10}{'accuracy':>10}{'ms/call':>10}"
               f"{'ms/1k':>10}")
    for r in rows:
        click.echo(f"{r['member']:<28}{str(r['family'])[:21]:<22}{r['format']:<10}"
                   f"{fmt_(r['metrics'], 'log_loss', '.4f'):>10}{fmt_(r['metrics'], 'accuracy', '.3f'):>10}"
                   f"{fmt(r['call_ms'], '.3f'):>10}{fmt(r['ms_per_1k'], '.2f'):>10}")


@models.command("show")
@click.argument("tag", metavar="NAME[@vN]")
@click.option("--json", "as_json", is_flag=True, help="The manifest as JSON.")
@setting_option("worker.registry")
@click.pass_context
def show(ctx: click.Context, tag: str, as_json: bool, registry: Path | None) -> None:
    """One member version's manifest (default: the latest version)."""
    m = manifest_of(registry_root(ctx, registry), "models", tag)
    if as_json:
        emit_json(m)
        return
    click.echo(f"{m['id']}@v{m['version']}  family {m.get('family')}  classes {m.get('classes')}")
    if m.get("source"):
        s = m["source"]
        click.echo(f"source    {s['format']} {s['type']} from {s['file']} (sha256 {s['sha256'][:12]})")
    if m.get("holdout"):
        click.echo(f"holdout   {m['holdout']['name']}, {m['holdout']['rows']} rows")
    click.echo("features  " + ", ".join(m.get("features") or []))
    click.echo("metrics   " + "  ".join(f"{k} {v:.4f}" for k, v in (m.get("metrics") or {}).items()))
    click.echo(f"cost      {fmt(m.get('call_ms'), '.3f')} ms/call, {fmt(m.get('cost_ms_per_1k'), '.2f')} ms/1k rows")
