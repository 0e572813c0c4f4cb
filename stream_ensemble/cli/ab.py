"""``stream-ensemble ab``: champion/challenger experiments (start, stop, status, report, promote, evaluate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson

from stream_ensemble.cli.common import config_from, setting_option
from stream_ensemble.errors import ConfigError


@click.group()
def ab() -> None:
    """Champion/challenger experiments: Redis se:ab:<ensemble>, the faust outcome join, the report."""


def _store(cfg: Any) -> Any:
    from stream_ensemble.adapters.ab_store import ABStore
    from stream_ensemble.adapters.redis_store import connect

    return ABStore(connect(cfg.redis), cfg.redis.key_prefix)


def _registered(registry: Path, tag: str) -> None:
    from stream_ensemble.core.registry import Registry

    name, _, v = tag.rpartition("@v")
    versions = Registry(registry).versions("ensembles", name)
    if int(v) not in versions:
        have = ", ".join(f"{name}@v{x}" for x in versions) or "none"
        raise ConfigError(f"ensemble version {tag} is not in the registry {registry} (have: {have})")


def _latest(registry: Path, ensemble: str) -> str:
    from stream_ensemble.core.registry import Registry

    versions = Registry(registry).versions("ensembles", ensemble)
    if not versions:
        raise ConfigError(f"no ensemble {ensemble!r} in the registry {registry} (train one first)")
    return f"{ensemble}@v{versions[-1]}"


@ab.command("start")
@click.argument("ensemble")
@click.option("--challenger", "challengers", multiple=True, required=True, metavar="NAME@vN[=WEIGHT]",
              help="A challenger version and its traffic share in percent (repeatable; default weight: --weight).")
@click.option("--weight", type=click.FloatRange(0, 100), default=10.0, show_default=True,
              help="Traffic share in percent of a challenger given without =WEIGHT.")
@click.option("--champion", default=None, metavar="NAME@vN", help="Default: the deployed version (se:deploy:<ensemble>), else the latest.")
@click.option("--mode", type=click.Choice(["split", "shadow"]), default="split", show_default=True,
              help="split: the challenger's share is scored by it; shadow: the champion scores everything, challengers' scores go to the shadow topic.")
@click.option("--salt", default=None, help="Assignment salt (default: the experiment id; a new salt reshuffles entities).")
@click.option("--ramp", default=None, metavar="P1,P2,...", help="Canary: start challengers at P1%% and raise step by step while the guardrail holds.")
@click.option("--experiment", "experiment_id", default=None, help="Experiment id (default: <ensemble>-<UTC time>).")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@setting_option("worker.registry")
@setting_option("ab.outcomes_per_step")
@click.pass_context
def ab_start(ctx: click.Context, ensemble: str, challengers: tuple[str, ...], weight: float, champion: str | None,
             mode: str, salt: str | None, ramp: str | None, experiment_id: str | None, redis_url: str | None,
             key_prefix: str | None, registry: Path | None, outcomes_per_step: int | None) -> None:
    """Start (or replace) the experiment of ENSEMBLE; workers pick it up within a second."""
    from stream_ensemble.core.experiments import Ramp
    from stream_ensemble.core.experiments.spec import ExperimentSpec, parse_challengers

    cfg = config_from(ctx, redis__url=redis_url, redis__key_prefix=key_prefix, worker__registry=registry,
                      ab__outcomes_per_step=outcomes_per_step)
    weights: dict[str, float] = {}
    for item in challengers:
        weights.update(parse_challengers(item if "=" in item else f"{item}={weight:g}"))
    steps = Ramp.parse(ramp, cfg.ab.outcomes_per_step) if ramp else None
    if steps is not None:
        weights = dict.fromkeys(weights, steps.steps[0])
    store = _store(cfg)
    champion = champion or store.deployed(ensemble) or _latest(cfg.worker.registry, ensemble)
    exp_id = experiment_id or f"{ensemble}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    spec = ExperimentSpec(ensemble=ensemble, experiment=exp_id, champion=champion, challengers=weights, mode=mode,
                          salt=salt or exp_id, ramp=ramp or "", ramp_step=0)
    for tag in [spec.champion, *spec.challengers]:
        _registered(cfg.worker.registry, tag)
    store.write(ensemble, {**spec.to_fields(), "started_at": repr(time.time()), "ramp_base": "0"}, replace=True)
    click.echo(f"experiment {exp_id}: champion {champion}, challengers {spec.to_fields()['challengers']} ({mode})"
               + (f", ramp {ramp}" if ramp else ""))


@ab.command("stop")
@click.argument("ensemble")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@click.pass_context
def ab_stop(ctx: click.Context, ensemble: str, redis_url: str | None, key_prefix: str | None) -> None:
    """Stop the experiment: every event goes to the champion again (results are kept)."""
    cfg = config_from(ctx, redis__url=redis_url, redis__key_prefix=key_prefix)
    store = _store(cfg)
    if not store.read(ensemble):
        raise ConfigError(f"no experiment for ensemble {ensemble!r}")
    store.write(ensemble, {"status": "stopped"})
    click.echo(f"{ensemble}: stopped")


@ab.command("status")
@click.argument("ensemble", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@setting_option("ab.app_id")
@click.pass_context
def ab_status(ctx: click.Context, ensemble: str | None, as_json: bool, redis_url: str | None, key_prefix: str | None,
              app_id: str | None) -> None:
    """The experiment hash of ENSEMBLE (default: every experiment) and the outcomes joined so far."""
    cfg = config_from(ctx, redis__url=redis_url, redis__key_prefix=key_prefix, ab__app_id=app_id)
    store = _store(cfg)
    names = [ensemble] if ensemble else store.ensembles()
    out = {n: store.read(n) for n in names}
    if ensemble and not out[ensemble]:
        raise ConfigError(f"no experiment for ensemble {ensemble!r}")
    counts = store.counts(cfg.ab.app_id)
    if as_json:
        click.echo(orjson.dumps({"experiments": out, "join": counts}).decode())
        return
    for n, fields in out.items():
        click.echo(f"{n}: " + ", ".join(f"{k}={v}" for k, v in fields.items() if not k.startswith(("seq_p:", "worse_p:"))))
    if not out:
        click.echo("(no experiment)")
    click.echo("join: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "(ab evaluate has not run)"))


@ab.command("report")
@click.argument("ensemble")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write FILE.json, FILE.md and FILE.png (each arm's metric over time with its bands).")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@setting_option("ab.app_id")
@setting_option("ab.metric", type=click.Choice(["accuracy", "log_loss", "brier"]))
@setting_option("ab.alpha")
@setting_option("ab.min_outcomes")
@setting_option("ab.guardrail_test", type=click.Choice(["one-sided", "two-sided"]))
@click.pass_context
def ab_report(ctx: click.Context, ensemble: str, out: Path | None, redis_url: str | None, key_prefix: str | None,
              app_id: str | None, ab_metric: str | None, alpha: float | None, min_outcomes: int | None,
              guardrail_test: str | None) -> None:
    """The experiment's table: per arm metric with its interval, challenger - champion (fixed and anytime-valid)."""
    from stream_ensemble.ab.control import report

    cfg = config_from(ctx, redis__url=redis_url, redis__key_prefix=key_prefix, ab__app_id=app_id, ab__metric=ab_metric,
                      ab__alpha=alpha, ab__min_outcomes=min_outcomes, ab__guardrail_test=guardrail_test)
    store = _store(cfg)
    rep = report(store, ensemble, cfg.ab)
    from stream_ensemble.ab.table import render_table

    text = render_table(rep)
    click.echo(text)
    if out is not None:
        from stream_ensemble.ab.plot import plot_history

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(rep, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        out.with_suffix(".md").write_text(f"# Experiment {rep['experiment']}\n\n```\n{text}\n```\n")
        plot_history(store.history(rep["experiment"]), rep, out.with_suffix(".png"))
        click.echo(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


@ab.command("promote")
@click.argument("ensemble")
@click.option("--version", "tag", default=None, metavar="NAME@vN", help="Deploy this version (default: the report's winner).")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@setting_option("worker.registry")
@setting_option("ab.app_id")
@click.pass_context
def ab_promote(ctx: click.Context, ensemble: str, tag: str | None, redis_url: str | None, key_prefix: str | None,
               registry: Path | None, app_id: str | None) -> None:
    """Deploy the winner as champion (se:deploy:<ensemble>) and end the experiment."""
    from stream_ensemble.ab.control import report
    from stream_ensemble.core.experiments.spec import check_tag

    cfg = config_from(ctx, redis__url=redis_url, redis__key_prefix=key_prefix, worker__registry=registry, ab__app_id=app_id)
    store = _store(cfg)
    rep = report(store, ensemble, cfg.ab)
    if tag is None:
        if rep["winner"] == "undecided":
            raise ConfigError(f"{rep['experiment']} has no winner yet (sequential p >= alpha); pass --version to choose")
        tag = rep["arms"][rep["winner"]]["version"]
    check_tag(tag)
    _registered(cfg.worker.registry, tag)
    store.deploy(ensemble, tag)
    store.write(ensemble, {"status": f"promoted: {tag}"})
    click.echo(f"{ensemble}: deployed {tag} (se:deploy:{ensemble}); experiment {rep['experiment']} ended")


@ab.command("evaluate")
@setting_option("kafka.bootstrap")
@setting_option("kafka.scores_topic")
@setting_option("kafka.partitions")
@setting_option("redis.url", "--redis", "redis_url")
@setting_option("redis.key_prefix")
@setting_option("ab.outcomes_topic")
@setting_option("ab.shadow_topic")
@setting_option("ab.outcomes_dlq_topic")
@setting_option("ab.app_id")
@setting_option("ab.join_window_s")
@setting_option("ab.metric", type=click.Choice(["accuracy", "log_loss", "brier"]))
@setting_option("ab.alpha")
@setting_option("ab.min_outcomes")
@setting_option("ab.outcomes_per_step")
@setting_option("ab.refresh_s")
@setting_option("ab.guardrail_test", type=click.Choice(["one-sided", "two-sided"]))
@setting_option("ab.stall_s")
@click.pass_context
def ab_evaluate(ctx: click.Context, bootstrap: str | None, scores_topic: str | None, partitions: int | None,
                redis_url: str | None, key_prefix: str | None, outcomes_topic: str | None, shadow_topic: str | None,
                outcomes_dlq_topic: str | None, app_id: str | None, join_window_s: float | None, ab_metric: str | None,
                alpha: float | None, min_outcomes: int | None, outcomes_per_step: int | None,
                ab_refresh_s: float | None, guardrail_test: str | None, stall_s: float | None) -> None:
    """Run the faust outcome join: scores + shadow scores + outcomes -> per arm sums, guardrail, ramp."""
    from stream_ensemble.adapters.kafka import ensure_topics

    cfg = config_from(
        ctx, kafka__bootstrap=bootstrap, kafka__scores_topic=scores_topic, kafka__partitions=partitions,
        redis__url=redis_url, redis__key_prefix=key_prefix, ab__outcomes_topic=outcomes_topic,
        ab__shadow_topic=shadow_topic, ab__outcomes_dlq_topic=outcomes_dlq_topic, ab__app_id=app_id,
        ab__join_window_s=join_window_s, ab__metric=ab_metric, ab__alpha=alpha, ab__min_outcomes=min_outcomes,
        ab__outcomes_per_step=outcomes_per_step, ab__refresh_s=ab_refresh_s, ab__guardrail_test=guardrail_test,
        ab__stall_s=stall_s,
    )  # fmt: skip
    _store(cfg)  # Redis reachable, else one line and exit 1
    ab_cfg, k = cfg.ab, cfg.kafka
    # The internal re-keying topic too: when faust creates it itself, its group can be formed
    # before the topic is in the metadata ("Ignoring missing topic: <app id>-joinable"), and
    # then the join agent is assigned nothing and joins nothing (seen under load).
    ensure_topics(k, [(k.scores_topic, k.partitions), (ab_cfg.shadow_topic, k.partitions),
                      (ab_cfg.outcomes_topic, k.partitions), (ab_cfg.outcomes_dlq_topic, 1),
                      (f"{ab_cfg.app_id}-joinable", k.partitions)])
    from stream_ensemble.ab.faust_app import run

    root = ctx.find_root().obj or {}
    run(cfg, loglevel="info" if not root.get("debug") else "debug")
