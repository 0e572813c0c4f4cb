"""``stream-ensemble ensemble build | list | show``: ensemble versions from registered members.

\b
stream-ensemble ensemble build churn --members churn_xgb@v1,churn_lr@v2 --holdout holdout.csv --label churned
stream-ensemble deploy churn@v1
stream-ensemble ensemble list --json
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from stream_ensemble.cli.common import pin_threads, setting_option
from stream_ensemble.cli.models import all_manifests, emit_json, fmt, fmt_, load_holdout, manifest_of, registry_root
from stream_ensemble.cli.train import build_config
from stream_ensemble.errors import ConfigError


@click.group()
def ensemble() -> None:
    """Build an ensemble version from registered members on a holdout; list and show versions."""


@ensemble.command("build")
@click.argument("name")
@click.option("--members", required=True, help="Members, comma-separated: a@v1,b@v3 (a bare name is its latest).")
@click.option("--holdout", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled CSV rows no member saw: selection, combiner, calibration and conformal sets are fit "
                   "on them, cross-fitted for the reported metrics.")
@click.option("--label", required=True, help="Label column of --holdout.")
@click.option("--positive", default=None, help="Positive class value (as at `models add`).")
@click.option("--strategy", default="auto", show_default=True,
              help="Served strategy: auto (chosen on the holdout) or a strategy name (see `train --help`).")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Latency budget of the selection: total member cost, ms per 1,000 rows (as measured at models add).")
@click.option("--max-members", type=click.IntRange(1, 1000), default=None, help="At most this many members selected.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Folds of the cross-fitted metrics.")
@click.option("--alpha", default=0.1, show_default=True, type=float, help="Miscoverage of the prediction sets.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the build summary as JSON.")
@setting_option("worker.registry")
@click.pass_context
def build(ctx: click.Context, name: str, members: str, holdout: Path, label: str, positive: str | None, strategy: str,
          budget_ms: float | None, max_members: int | None, folds: int, alpha: float, seed: int, as_json: bool,
          registry: Path | None) -> None:
    """Fit an ensemble of MEMBERS on the holdout and register it as the next version of NAME.

    Then `stream-ensemble deploy NAME@vN` serves it live.
    """
    from stream_ensemble.core.registry import Registry
    from stream_ensemble.core.training.builder import BuildConfig
    from stream_ensemble.core.training.byom import build_ensemble

    pin_threads()
    tags = [t.strip() for t in members.split(",") if t.strip()]
    if not tags:
        raise ConfigError("--members is empty; give a@v1,b@v2")
    root = registry_root(ctx, registry)
    data = load_holdout(holdout, label, positive)
    cfg = replace(build_config(BuildConfig, strategy, budget_ms, max_members, seed), conformal_alpha=alpha)
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    result = build_ensemble(Registry(root), name, tags, data, config=cfg, folds=folds, progress=say)
    s = result.summary
    if as_json:
        emit_json({"ensemble": f"{result.ensemble}@v{result.version}", **s})
        return
    manifest = manifest_of(root, "ensembles", f"{result.ensemble}@v{result.version}")
    click.echo(f"\nbuilt {result.ensemble}@v{result.version}: strategy {manifest['strategy']}, runs "
               f"{', '.join(manifest['selected'])}; cross-fitted over {s['folds']} folds of {s['rows']} holdout rows")
    click.echo(f"{'':<30}{'log loss':>10}{'accuracy':>10}{'roc auc':>10}")
    served = s["served_strategy"]
    rows: list[tuple[str, dict[str, Any]]] = [("build procedure (cross-fitted)", s["metrics"]),
                                              (f"served: {served['strategy']}"[:29], served["metrics"])]
    rows += [(f"member {t}", v) for t, v in s["members"].items()]
    for what, mt in rows:
        click.echo(f"{what:<30}{fmt_(mt, 'log_loss', '.4f'):>10}{fmt_(mt, 'accuracy', '.3f'):>10}"
                   f"{fmt_(mt, 'roc_auc', '.4f'):>10}")
    click.echo(f"prediction sets of {served['strategy']}: coverage {served['conformal_coverage']:.3f} (target "
               f"{1 - alpha:.2f}), mean size {served['mean_set_size']:.2f}; cost {s['cost']['call_ms']:.3f} ms/call, "
               f"{s['cost']['ms_per_1k']:.2f} ms/1k rows")
    click.echo(f"serve it: stream-ensemble deploy {result.ensemble}@v{result.version}")


def _cost(root: Path, m: dict[str, Any]) -> dict[str, float]:
    """An ensemble version's cost: its build block's, else the sum over the member versions it runs."""
    if (m.get("build") or {}).get("cost"):
        return dict(m["build"]["cost"])
    selected = set(m.get("selected") or [])
    runs = [manifest_of(root, "models", t) for t in m.get("members") or [] if t.rpartition("@v")[0] in selected]
    return {"call_ms": sum(float(r.get("call_ms", 0.0)) for r in runs),
            "ms_per_1k": sum(float(r.get("cost_ms_per_1k", 0.0)) for r in runs)}


@ensemble.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of every ensemble version.")
@setting_option("worker.registry")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, registry: Path | None) -> None:
    """Every ensemble version: strategy, members it runs, metrics and cost."""
    root = registry_root(ctx, registry)
    rows = [{"ensemble": f"{m['id']}@v{m['version']}", "strategy": m.get("strategy"),
             "built_from": m.get("built_from", "train" if "distillation" not in m else "distill"),
             "selected": m.get("selected") or [], "members": m.get("members") or [],
             "metrics": m.get("metrics") or {}, "cost": _cost(root, m)}
            for m in all_manifests(root, "ensembles")]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'ensemble':<22}{'from':<9}{'strategy':<24}{'runs':>5}{'log loss':>10}{'accuracy':>10}{'ms/1k':>9}")
    for r in rows:
        click.echo(f"{r['ensemble']:<22}{r['built_from']:<9}{str(r['strategy'])[:23]:<24}{len(r['selected']):>5}"
                   f"{fmt_(r['metrics'], 'log_loss', '.4f'):>10}{fmt_(r['metrics'], 'accuracy', '.3f'):>10}"
                   f"{fmt(r['cost'].get('ms_per_1k'), '.2f'):>9}")


@ensemble.command("show")
@click.argument("tag", metavar="NAME[@vN]")
@click.option("--json", "as_json", is_flag=True, help="The manifest as JSON.")
@setting_option("worker.registry")
@click.pass_context
def show(ctx: click.Context, tag: str, as_json: bool, registry: Path | None) -> None:
    """One ensemble version's manifest (default: the latest version)."""
    root = registry_root(ctx, registry)
    m = manifest_of(root, "ensembles", tag)
    if as_json:
        emit_json({k: v for k, v in m.items() if k not in ("holdout_rows",)})
        return
    click.echo(f"{m['id']}@v{m['version']}  strategy {m.get('strategy')}  classes {m.get('classes')}")
    click.echo("members   " + ", ".join(m.get("members") or []))
    click.echo("runs      " + ", ".join(m.get("selected") or []))
    click.echo("metrics   " + "  ".join(f"{k} {v:.4f}" for k, v in (m.get("metrics") or {}).items()))
    c = _cost(root, m)
    click.echo(f"cost      {fmt(c.get('call_ms'), '.3f')} ms/call, {fmt(c.get('ms_per_1k'), '.2f')} ms/1k rows "
               "(the members it runs)")
    b = m.get("build")
    if b:
        click.echo(f"build     {b['protocol']}")
        if b.get("served_strategy"):
            sv = b["served_strategy"]
            click.echo(f"          {sv['strategy']} alone, cross-fitted: " + "  ".join(
                f"{k} {v:.4f}" for k, v in sv["metrics"].items()))
        click.echo(f"          coverage {b['conformal_coverage']:.3f}, mean set size {b['mean_set_size']:.2f}; "
                   f"best single {b['best_single']['member']} log loss {fmt_(b['best_single'], 'log_loss', '.4f')}")
