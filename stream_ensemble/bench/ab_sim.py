"""``bench ab-sim``: why the experiments use an anytime-valid test, measured offline.

Simulated split experiments (each outcome goes to either arm with probability
``challenger_fraction``; an outcome is 1{correct}), looked at every ``look_every`` outcomes,
evaluated through :func:`stream_ensemble.core.experiments.compare` — the same code the
experiment report and the guardrail use:

- **A/A** (both arms at ``base_accuracy``): the share of experiments that ever reject at level
  alpha when the fixed-horizon p-value is peeked at every look, against the same share for the
  sequential (mixture SPRT) p-value, and for reference the fixed-horizon test read once at the
  end.
- **power** (challenger ``effect`` worse): the share of experiments in which the confidence
  sequence shows the challenger worse by ``power_max_outcomes``, by 10,000 outcomes, and the
  median number of outcomes needed (over the detected runs).

Experiments are simulated in chunks so memory stays bounded (~ chunk x outcomes x 8 bytes).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_ensemble.core.experiments import MetricSums, compare, mixture_p_value


@dataclass(frozen=True)
class SimConfig:
    experiments: int = 1000
    max_outcomes: int = 10_000
    look_every: int = 100
    power_max_outcomes: int = 40_000
    base_accuracy: float = 0.80
    effect: float = 0.02
    challenger_fraction: float = 0.5
    alpha: float = 0.05
    mixture_scale: float = 0.05
    seed: int = 0
    chunk: int = 100


def _looks(rng: np.random.Generator, n_exp: int, n_out: int, every: int, p_champion: float,
           p_challenger: float, fraction: float) -> tuple[MetricSums, MetricSums, npt.NDArray[np.int64]]:
    """Cumulative arm sums at each look: fields of shape (n_exp, n_looks)."""
    to_challenger = rng.random((n_exp, n_out)) < fraction
    u = rng.random((n_exp, n_out))
    correct = np.where(to_challenger, u < p_challenger, u < p_champion)
    looks = np.arange(every, n_out + 1, every, dtype=np.int64)
    idx = looks - 1
    n_c = np.cumsum(to_challenger, axis=1)[:, idx].astype(np.float64)
    s_c = np.cumsum(correct & to_challenger, axis=1)[:, idx].astype(np.float64)
    s_all = np.cumsum(correct, axis=1)[:, idx].astype(np.float64)
    n_0 = looks[None, :] - n_c
    s_0 = s_all - s_c
    # 1{correct} squared is itself: the sum of squares equals the sum.
    return MetricSums(n_c, s_c, s_c), MetricSums(n_0, s_0, s_0), looks


def run(config: SimConfig, progress: bool = False) -> dict[str, Any]:
    """Run the A/A and power simulations; return the result dict (see the module docstring)."""
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    p0 = config.base_accuracy
    fixed_any = seq_any = fixed_final = 0
    chunks = range(0, config.experiments, config.chunk)
    for start in chunks:
        k = min(config.chunk, config.experiments - start)
        ch, champ, _ = _looks(rng, k, config.max_outcomes, config.look_every, p0, p0, config.challenger_fraction)
        cmp = compare(ch, champ, alpha=config.alpha, mixture_scale=config.mixture_scale)
        fixed_any += int(np.sum(np.any(cmp.p_value < config.alpha, axis=1)))
        fixed_final += int(np.sum(cmp.p_value[:, -1] < config.alpha))
        seq_any += int(np.sum(mixture_p_value(cmp.mixture_p, axis=1)[:, -1] < config.alpha))
    n = config.experiments
    aa = {
        "experiments": n,
        "looks": config.max_outcomes // config.look_every,
        "fixed_horizon_peeked_fpr": fixed_any / n,
        "sequential_fpr": seq_any / n,
        "fixed_horizon_once_fpr": fixed_final / n,
        "fixed_horizon_peeked_fpr_ci95": list(_wilson(fixed_any, n)),
        "sequential_fpr_ci95": list(_wilson(seq_any, n)),
    }
    needed: list[int] = []
    detected_10k = 0
    wrong_direction = 0
    for start in chunks:
        k = min(config.chunk, config.experiments - start)
        ch, champ, looks = _looks(rng, k, config.power_max_outcomes, config.look_every, p0, p0 - config.effect,
                                  config.challenger_fraction)
        cmp = compare(ch, champ, alpha=config.alpha, mixture_scale=config.mixture_scale)
        worse = cmp.cs_high < 0
        wrong_direction += int(np.sum(np.any(cmp.cs_low > 0, axis=1)))
        first = np.where(np.any(worse, axis=1), np.argmax(worse, axis=1), -1)
        for f in first:
            if f >= 0:
                needed.append(int(looks[f]))
                detected_10k += int(looks[f] <= 10_000)
    power = {
        "experiments": n,
        "effect": config.effect,
        "max_outcomes": config.power_max_outcomes,
        "power": len(needed) / n,
        "power_by_10000": detected_10k / n,
        "median_outcomes_needed": float(np.median(needed)) if needed else None,
        "p90_outcomes_needed": float(np.percentile(needed, 90)) if needed else None,
        "wrong_direction": wrong_direction / n,
    }
    alpha = config.alpha
    return {
        "config": asdict(config),
        "aa": aa,
        "power": power,
        "sequential_fpr_within_alpha": seq_any / n <= alpha,
        "peeked_fixed_exceeds_alpha": fixed_any / n > alpha,
        "elapsed_s": time.perf_counter() - t0,
    }


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def render_markdown(result: dict[str, Any]) -> str:
    c, aa, pw = result["config"], result["aa"], result["power"]
    return "\n".join([
        "# bench ab-sim: peeking at a live experiment",
        "",
        f"{aa['experiments']} simulated A/A split experiments (accuracy {c['base_accuracy']} in both arms, "
        f"{c['challenger_fraction']:.0%} to the challenger), looked at every {c['look_every']} outcomes up to "
        f"{c['max_outcomes']} ({aa['looks']} looks), alpha = {c['alpha']}.",
        "",
        "| test | false-positive rate | 95% interval |",
        "|---|---|---|",
        f"| fixed-horizon, peeked at every look | **{aa['fixed_horizon_peeked_fpr']:.3f}** | "
        f"{aa['fixed_horizon_peeked_fpr_ci95'][0]:.3f}–{aa['fixed_horizon_peeked_fpr_ci95'][1]:.3f} |",
        f"| anytime-valid (mixture SPRT, scale {c['mixture_scale']}), same looks | **{aa['sequential_fpr']:.3f}** | "
        f"{aa['sequential_fpr_ci95'][0]:.3f}–{aa['sequential_fpr_ci95'][1]:.3f} |",
        f"| fixed-horizon, read once at {c['max_outcomes']} | {aa['fixed_horizon_once_fpr']:.3f} | |",
        "",
        f"Challenger {pw['effect']:.0%} (absolute) less accurate, same looks up to {pw['max_outcomes']} outcomes:",
        "",
        "| power | power by 10,000 outcomes | median outcomes needed | 90th percentile | wrong direction |",
        "|---|---|---|---|---|",
        f"| {pw['power']:.3f} | {pw['power_by_10000']:.3f} | {_num(pw['median_outcomes_needed'])} | "
        f"{_num(pw['p90_outcomes_needed'])} | {pw['wrong_direction']:.3f} |",
        "",
    ])  # fmt: skip


def _num(x: Any) -> str:
    return "–" if x is None else f"{x:.0f}"


def render_png(result: dict[str, Any], path: Path) -> None:
    """Bar chart of the two false-positive rates against alpha (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aa, alpha = result["aa"], result["config"]["alpha"]
    labels = ["fixed-horizon\npeeked", "anytime-valid\n(mSPRT)", "fixed-horizon\nread once"]
    values = [aa["fixed_horizon_peeked_fpr"], aa["sequential_fpr"], aa["fixed_horizon_once_fpr"]]
    lows = [aa["fixed_horizon_peeked_fpr_ci95"][0], aa["sequential_fpr_ci95"][0], values[2]]
    highs = [aa["fixed_horizon_peeked_fpr_ci95"][1], aa["sequential_fpr_ci95"][1], values[2]]
    fig, ax = plt.subplots(figsize=(6, 4))
    err = [[v - lo for v, lo in zip(values, lows)], [hi - v for v, hi in zip(values, highs)]]
    ax.bar(labels, values, yerr=err, color=["#c44e52", "#55a868", "#8c8c8c"], capsize=4)
    ax.axhline(alpha, color="black", linestyle="--", linewidth=1, label=f"alpha = {alpha}")
    ax.set_ylabel("false-positive rate (A/A)")
    ax.set_title(f"{aa['experiments']} A/A experiments, {aa['looks']} looks each")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
