"""``stream-ensemble bench ab-sim | ab``: the sequential statistics on simulated experiments, and one
experiment end to end on the real broker, Redis, worker and faust app."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stream_ensemble.cli.bench.common import ensure_ensemble, jsonable, usage_error, write_outputs
from stream_ensemble.cli.common import setting_option
from stream_ensemble.errors import ConfigError


def _floats(text: str, flag: str, low: float, high: float) -> tuple[float, ...]:
    """``"0.75,0.9"`` -> (0.75, 0.9); empty -> (); a bad item is a one-line usage error."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise usage_error(ConfigError(f"{flag} must be comma-separated numbers, got {text!r}")) from None
    if any(not low < v < high for v in values):
        raise usage_error(ConfigError(f"{flag} values must be in ({low:g}, {high:g}), got {text!r}"))
    return values


@click.command(name="ab-sim")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown, PNG and HTML page are written next to it.")
@click.option("--experiments", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Simulated experiments of each kind (A/A and challenger worse) per design.")
@click.option("--max-outcomes", type=click.IntRange(min=2), default=10_000, show_default=True,
              help="Outcomes per A/A experiment; also the horizon power is reported by.")
@click.option("--look-every", type=click.IntRange(min=2), default=100, show_default=True,
              help="Outcomes between two looks.")
@click.option("--power-max-outcomes", type=click.IntRange(min=2), default=40_000, show_default=True,
              help="Outcomes per experiment in the power simulation.")
@click.option("--base-accuracy", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Champion accuracy of the headline design.")
@click.option("--effect", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.02,
              show_default=True, help="How much less accurate the challenger is in the power simulation.")
@click.option("--challenger-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Share of outcomes from the challenger's arm (headline design).")
@click.option("--grid-base-accuracies", default="0.75,0.9,0.97", show_default=True,
              help="Champion accuracies of the grid (comma-separated; empty: no grid).")
@click.option("--grid-fractions", default="0.5,0.3,0.2", show_default=True,
              help="Challenger shares of the grid's split designs (comma-separated).")
@click.option("--shadow-correlations", default="0,0.5", show_default=True,
              help="Correlations of the two arms' correctness on an event, for the grid's shadow (paired) designs.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--mixture-scale", type=click.FloatRange(0, min_open=True), default=0.05, show_default=True,
              help="Mixture SPRT tau, in standard deviations of one observation of the difference.")
@click.option("--seed", type=int, default=0, show_default=True)
def ab_sim_cmd(out: Path, experiments: int, max_outcomes: int, look_every: int, power_max_outcomes: int,
               base_accuracy: float, effect: float, challenger_fraction: float, grid_base_accuracies: str,
               grid_fractions: str, shadow_correlations: str, alpha: float, mixture_scale: float, seed: int) -> None:
    """False positives of a peeked fixed-horizon test vs the anytime-valid tests, and the
    guardrail's power (one- and two-sided) by base accuracy, split and shadow design.

    Offline simulation through the experiments' statistics code (no servers needed). The last
    stdout line is a JSON summary.
    """
    from stream_ensemble.bench import ab_sim, ab_sim_report

    if look_every > max_outcomes or look_every > power_max_outcomes:
        raise usage_error(ConfigError("--look-every must not exceed --max-outcomes / --power-max-outcomes"))
    if effect >= base_accuracy:
        raise usage_error(ConfigError("--effect must be smaller than --base-accuracy"))
    config = ab_sim.SimConfig(
        experiments=experiments, max_outcomes=max_outcomes, look_every=look_every,
        power_max_outcomes=power_max_outcomes, base_accuracy=base_accuracy, effect=effect,
        challenger_fraction=challenger_fraction, alpha=alpha, mixture_scale=mixture_scale, seed=seed,
        grid_base_accuracies=_floats(grid_base_accuracies, "--grid-base-accuracies", 0, 1),
        grid_fractions=_floats(grid_fractions, "--grid-fractions", 0, 1),
        shadow_correlations=_floats(shadow_correlations, "--shadow-correlations", -1, 1),
    )  # fmt: skip
    try:
        n_designs = 1 + len(ab_sim.grid_designs(config))
    except ConfigError as exc:
        raise usage_error(exc) from None
    click.echo(f"simulating {experiments} A/A and {experiments} challenger-worse experiments for each of "
               f"{n_designs} designs ...", err=True)
    result = ab_sim.run(config)
    write_outputs(out, result, ab_sim_report.render_markdown(result), ab_sim_report.render_png, "stream-ensemble ab-sim")
    aa, power = result["aa"], result["power"]
    click.echo(f"A/A false-positive rate, {aa['looks']} looks: fixed-horizon peeked {aa['fixed_horizon_peeked_fpr']:.3f}, "
               f"anytime-valid {aa['sequential_fpr']:.3f}; guardrail false stops one-sided "
               f"{aa['guardrail_one_sided_fpr']:.3f}, two-sided {aa['guardrail_two_sided_fpr']:.3f} (alpha {alpha})")
    one, two = power["one_sided"], power["two_sided"]
    click.echo(f"challenger {effect:g} worse: stopped by {max_outcomes} one-sided {one['power_by_horizon']:.3f}, "
               f"two-sided {two['power_by_horizon']:.3f} (fixed one-sided read once: "
               f"{power['fixed_one_sided_theory_power']:.3f}); median outcomes needed {one['median_outcomes_needed']}")
    click.echo(f"{result['elapsed_s']:.0f} s", err=True)
    click.echo(json.dumps(jsonable(ab_sim.summary_line(result)), separators=(",", ":"), allow_nan=False))


@click.command(name="ab")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Result JSON; the Markdown, PNG and HTML report are written next to it.")
@setting_option("kafka.bootstrap")
@setting_option("redis.url", "--redis", "redis_url")
@click.option("--registry", type=click.Path(path_type=Path, file_okay=False), default=Path("var/registry"),
              show_default=True, help="Registry of the champion (copied; trained on the bundled dataset when empty).")
@click.option("--rate", type=click.FloatRange(min=10), default=150.0, show_default=True, help="Feature events/s.")
@click.option("--entities", type=click.IntRange(min=50), default=1500, show_default=True,
              help="Distinct entity_ids the events are drawn from (the unit of assignment).")
@click.option("--fraction", type=click.FloatRange(0.01, 0.99), default=0.30, show_default=True,
              help="Challenger share of phase 1.")
@click.option("--switch-to", type=click.FloatRange(0.01, 0.99), default=0.50, show_default=True,
              help="Challenger share written live at the start of phase 2.")
@click.option("--phase-s", type=click.FloatRange(min=4), default=20.0, show_default=True, help="Seconds of each phase.")
@click.option("--min-outcomes", type=click.IntRange(min=1), default=200, show_default=True,
              help="Challenger outcomes before the armed guardrail may stop it.")
@click.option("--shadow-events", type=click.IntRange(min=10), default=400, show_default=True,
              help="Events of each run of the shadow check.")
@click.option("--time-scale", type=click.FloatRange(0.1, 10), default=1.0, show_default=True,
              help="Multiply the phase durations (the integration test uses less than 1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def ab_cmd(ctx: click.Context, out: Path, bootstrap: str | None, redis_url: str | None, registry: Path, rate: float,
           entities: int, fraction: float, switch_to: float, phase_s: float, min_outcomes: int, shadow_events: int,
           time_scale: float, seed: int) -> None:
    """A weaker challenger (one stump) in a split experiment on the real broker, Redis, worker and
    faust app: share, live switch, stickiness, worker and join restarts, guardrail, shadow identity."""
    from stream_ensemble.bench.ab_live import report
    from stream_ensemble.bench.ab_live.run import ABBenchConfig, run
    from stream_ensemble.cli.common import config_from
    from stream_ensemble.errors import StreamEnsembleError

    cfg = config_from(ctx, kafka__bootstrap=bootstrap, redis__url=redis_url)
    try:
        ensure_ensemble(registry, "default", "breast_cancer", None, "breast_cancer")
        from stream_ensemble.adapters.kafka import ensure_topics
        from stream_ensemble.adapters.redis_store import connect

        ensure_topics(cfg.kafka, [])  # one clear line when a server is unreachable
        connect(cfg.redis)
    except StreamEnsembleError as exc:
        raise usage_error(exc) from None
    result = run(ABBenchConfig(
        bootstrap=cfg.kafka.bootstrap, redis_url=cfg.redis.url, registry=registry, work_dir=out.parent / f"{out.stem}-work",
        rate=rate, entities=entities, fraction=fraction, switch_to=switch_to, phase_s=phase_s, time_scale=time_scale,
        min_outcomes=min_outcomes, shadow_events=shadow_events, seed=seed, log=lambda m: click.echo(m, err=True)))
    write_outputs(out, result, report.render_markdown(result), report.render_png, "stream-ensemble ab")
    click.echo(report.summary_line(jsonable(result)))
