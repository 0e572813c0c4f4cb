"""``bench ab-sim``: why the experiments use an anytime-valid test, and what the guardrail can catch.

Simulated experiments (an outcome is 1{correct}), looked at every ``look_every`` outcomes,
evaluated through :func:`stream_ensemble.core.experiments.compare` and
:func:`~stream_ensemble.core.experiments.worse_p` — the same code the experiment report and the
guardrail use:

- **A/A** (both arms at ``base_accuracy``, a 50/50 split by default): the share of experiments
  that ever reject at level alpha when the fixed-horizon p-value is peeked at every look,
  against the same share for the sequential (mixture SPRT) p-value, the fixed-horizon test read
  once at the end, and the guardrail's false stops (one-sided sequential test; two-sided
  confidence sequence).
- **power** (challenger ``effect`` worse): the share of experiments the guardrail stops by the
  A/A horizon (``max_outcomes``) and by ``power_max_outcomes``, and the outcomes needed, for
  the one-sided test and the two-sided confidence sequence.
- **grid**: both, for each base accuracy in ``grid_base_accuracies``, each split in
  ``grid_fractions`` and each shadow (paired) design in ``shadow_correlations`` (the correlation
  of the two arms' correctness on the same event), with the fixed-horizon one-sided test read
  once at the horizon as the theoretical upper reference: no level-alpha test that stops by
  then can have more power (normal approximation).

Outcomes are drawn per look (binomial / multinomial counts of ``look_every`` outcomes), which
has the same distribution as drawing them one by one. Looks count from the first, with no
burn-in: the stricter case for the false-positive rates (skipping early looks can only lower
them) and within a look of the real guardrail's power (its ``--min-outcomes`` burn-in is 200).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from stream_ensemble.core.experiments import Comparison, MetricSums, compare, mixture_p_value, worse_p
from stream_ensemble.errors import ConfigError

NEVER = np.iinfo(np.int64).max


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
    chunk: int = 250
    grid_base_accuracies: tuple[float, ...] = (0.75, 0.9, 0.97)
    grid_fractions: tuple[float, ...] = (0.5, 0.3, 0.2)
    shadow_correlations: tuple[float, ...] = (0.0, 0.5)


@dataclass(frozen=True)
class Design:
    """One simulated design: ``mode`` split (``value`` = challenger share) or shadow (``value`` =
    correlation of the two arms' correctness on an event)."""

    mode: str
    base_accuracy: float
    value: float

    def label(self) -> str:
        v = f"{self.value:.0%} challenger" if self.mode == "split" else f"shadow, corr {self.value:g}"
        return f"acc {self.base_accuracy:g}, {v}"


def _shadow_cells(p0: float, p1: float, rho: float) -> npt.NDArray[np.float64]:
    """P(both right), P(champion only), P(challenger only), P(both wrong) with correlation rho."""
    both = p0 * p1 + rho * np.sqrt(p0 * (1 - p0) * p1 * (1 - p1))
    cells = np.array([both, p0 - both, p1 - both, 1 - p0 - p1 + both], dtype=np.float64)
    if np.any(cells < -1e-12):
        raise ConfigError(f"shadow correlation {rho} is impossible for accuracies {p0} and {p1}")
    cells = np.clip(cells, 0.0, 1.0)
    out: npt.NDArray[np.float64] = cells / cells.sum()
    return out


def _compare_looks(rng: np.random.Generator, design: Design, p_challenger: float, n_exp: int, n_out: int,
                   config: SimConfig) -> tuple[Comparison, npt.NDArray[np.int64]]:
    """challenger − champion at each look of ``n_exp`` experiments: fields of shape (n_exp, looks)."""
    every, p0 = config.look_every, design.base_accuracy
    n_looks = n_out // every
    looks = np.arange(1, n_looks + 1, dtype=np.int64) * every
    if design.mode == "shadow":
        counts = rng.multinomial(every, _shadow_cells(p0, p_challenger, design.value), size=(n_exp, n_looks))
        gain, loss = counts[..., 2], counts[..., 1]  # challenger only right: +1; champion only: -1
        total = np.cumsum(gain - loss, axis=1).astype(np.float64)
        sq = np.cumsum(gain + loss, axis=1).astype(np.float64)
        paired = MetricSums(np.broadcast_to(looks.astype(np.float64), total.shape), total, sq)
        zero = MetricSums.zero()
        return compare(zero, zero, paired_difference=paired, alpha=config.alpha,
                       mixture_scale=config.mixture_scale), looks  # fmt: skip
    inc_c = rng.binomial(every, design.value, size=(n_exp, n_looks))
    n_c = np.cumsum(inc_c, axis=1).astype(np.float64)
    s_c = np.cumsum(rng.binomial(inc_c, p_challenger), axis=1).astype(np.float64)
    s_0 = np.cumsum(rng.binomial(every - inc_c, p0), axis=1).astype(np.float64)
    n_0 = looks[None, :] - n_c
    # 1{correct} squared is itself: the sum of squares equals the sum.
    return compare(MetricSums(n_c, s_c, s_c), MetricSums(n_0, s_0, s_0), alpha=config.alpha,
                   mixture_scale=config.mixture_scale), looks  # fmt: skip


def _first(hit: npt.NDArray[np.bool_], looks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Outcomes at the first look where ``hit`` (n_exp, looks) holds, NEVER when it never does."""
    return np.where(hit.any(axis=1), looks[np.argmax(hit, axis=1)], NEVER)


def fixed_one_sided(design: Design, effect: float, n: int, alpha: float) -> dict[str, float]:
    """Power of the fixed-horizon one-sided z test read once at ``n`` outcomes, and the outcomes
    at which its power reaches one half (normal approximation)."""
    p0, p1 = design.base_accuracy, design.base_accuracy - effect
    if design.mode == "shadow":
        cells = _shadow_cells(p0, p1, design.value)
        unit_var = cells[1] + cells[2] - effect**2  # variance of one paired difference
    else:
        f = design.value
        unit_var = p1 * (1 - p1) / f + p0 * (1 - p0) / (1 - f)  # n x variance of the difference
    z = float(-ndtri(alpha))
    return {"power": float(ndtr(effect / np.sqrt(unit_var / n) - z)),
            "outcomes_for_half_power": float(np.ceil(z * z * unit_var / effect**2))}


def _stops(stop: npt.NDArray[np.int64], wrong: npt.NDArray[np.bool_], n: int, horizon: int) -> dict[str, Any]:
    found = stop[stop != NEVER]
    return {
        "power_by_horizon": float(np.sum(stop <= horizon) / n),
        "power": float(found.size / n),
        # over all runs (undetected = never): None when fewer than half are stopped in time
        "median_outcomes_to_stop": float(np.median(stop)) if found.size * 2 > n else None,
        "median_outcomes_needed": float(np.median(found)) if found.size else None,
        "p90_outcomes_needed": float(np.percentile(found, 90)) if found.size else None,
        "wrong_direction": float(np.sum(wrong) / n),
    }


def simulate(design: Design, config: SimConfig, rng: np.random.Generator) -> dict[str, Any]:
    """A/A false stops and power of the guardrail (one- and two-sided) for one design."""
    n, alpha, horizon = config.experiments, config.alpha, config.max_outcomes
    aa = {"fixed_horizon_peeked": 0, "fixed_one_sided_peeked": 0, "sequential": 0, "fixed_horizon_once": 0,
          "guardrail_one_sided": 0, "guardrail_two_sided": 0}
    z1 = float(-ndtri(alpha))
    for start in range(0, n, config.chunk):
        k = min(config.chunk, n - start)
        c, _ = _compare_looks(rng, design, design.base_accuracy, k, horizon, config)
        aa["fixed_horizon_peeked"] += int(np.sum(np.any(c.p_value < alpha, axis=1)))
        z = np.where(np.isfinite(c.difference), c.difference / c.std_error, 0.0)
        aa["fixed_one_sided_peeked"] += int(np.sum(np.any(z < -z1, axis=1)))
        aa["fixed_horizon_once"] += int(np.sum(c.p_value[:, -1] < alpha))
        aa["sequential"] += int(np.sum(mixture_p_value(c.mixture_p, axis=1)[:, -1] < alpha))
        aa["guardrail_one_sided"] += int(np.sum(np.any(worse_p(c, True) < alpha, axis=1)))
        aa["guardrail_two_sided"] += int(np.sum(np.any(c.cs_high < 0, axis=1)))
    stops: dict[str, list[Any]] = {"one_sided": [], "two_sided": [], "wrong_one": [], "wrong_two": []}
    fixed_once = 0
    p1 = design.base_accuracy - config.effect
    for start in range(0, n, config.chunk):
        k = min(config.chunk, n - start)
        c, looks = _compare_looks(rng, design, p1, k, config.power_max_outcomes, config)
        # the first look with worse_p < alpha is where its running minimum first drops below alpha
        stops["one_sided"].append(_first(worse_p(c, True) < alpha, looks))
        stops["two_sided"].append(_first(c.cs_high < 0, looks))
        stops["wrong_one"].append(np.any(worse_p(c, False) < alpha, axis=1))
        stops["wrong_two"].append(np.any(c.cs_low > 0, axis=1))
        at = min(horizon // config.look_every, looks.size) - 1
        z = c.difference[:, at] / c.std_error[:, at]
        fixed_once += int(np.sum(np.nan_to_num(z) < -z1))
    one, two = (np.concatenate(stops[s]) for s in ("one_sided", "two_sided"))
    theory = fixed_one_sided(design, config.effect, horizon, alpha)
    return {
        "mode": design.mode, "base_accuracy": design.base_accuracy,
        "challenger_fraction": design.value if design.mode == "split" else None,
        "correlation": design.value if design.mode == "shadow" else None,
        "aa": {f"{k}_fpr": v / n for k, v in aa.items()},
        "one_sided": _stops(one, np.concatenate(stops["wrong_one"]), n, horizon),
        "two_sided": _stops(two, np.concatenate(stops["wrong_two"]), n, horizon),
        "fixed_one_sided_once_power": fixed_once / n,
        "fixed_one_sided_theory_power": theory["power"],
        "fixed_one_sided_outcomes_for_half_power": theory["outcomes_for_half_power"],
        # no level-alpha test stopping by the horizon beats the fixed one-sided test read there
        "most_runs_possible_by_horizon": theory["power"] > 0.5,
    }  # fmt: skip


def grid_designs(config: SimConfig) -> list[Design]:
    """The grid's designs, checked (raises :class:`ConfigError` for an impossible one)."""
    designs = [Design("split", b, f) for b in config.grid_base_accuracies for f in config.grid_fractions]
    designs += [Design("shadow", b, r) for b in config.grid_base_accuracies for r in config.shadow_correlations]
    for d in designs:
        if d.base_accuracy - config.effect <= 0:
            raise ConfigError(f"--effect {config.effect} leaves no accuracy below base {d.base_accuracy}")
        if d.mode == "shadow":
            for p1 in (d.base_accuracy, d.base_accuracy - config.effect):
                _shadow_cells(d.base_accuracy, p1, d.value)
    return designs


def run(config: SimConfig) -> dict[str, Any]:
    """The headline design (A/A and power), then the grid; see the module docstring."""
    grid_designs(config)
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    n, alpha = config.experiments, config.alpha
    head = simulate(Design("split", config.base_accuracy, config.challenger_fraction), config, rng)
    a = head["aa"]
    k_fixed, k_seq = round(a["fixed_horizon_peeked_fpr"] * n), round(a["sequential_fpr"] * n)
    aa = {
        "experiments": n, "looks": config.max_outcomes // config.look_every,
        "fixed_horizon_peeked_fpr": a["fixed_horizon_peeked_fpr"], "sequential_fpr": a["sequential_fpr"],
        "fixed_horizon_once_fpr": a["fixed_horizon_once_fpr"],
        "fixed_one_sided_peeked_fpr": a["fixed_one_sided_peeked_fpr"],
        "guardrail_one_sided_fpr": a["guardrail_one_sided_fpr"], "guardrail_two_sided_fpr": a["guardrail_two_sided_fpr"],
        "fixed_horizon_peeked_fpr_ci95": list(wilson(k_fixed, n)), "sequential_fpr_ci95": list(wilson(k_seq, n)),
        "guardrail_one_sided_fpr_ci95": list(wilson(round(a["guardrail_one_sided_fpr"] * n), n)),
    }  # fmt: skip
    power = {"experiments": n, "effect": config.effect, "horizon": config.max_outcomes,
             "max_outcomes": config.power_max_outcomes, "one_sided": head["one_sided"], "two_sided": head["two_sided"],
             **{k: head[k] for k in ("fixed_one_sided_once_power", "fixed_one_sided_theory_power",
                                     "fixed_one_sided_outcomes_for_half_power", "most_runs_possible_by_horizon")}}
    grid = [simulate(d, config, rng) for d in grid_designs(config)]
    worst_fpr = max([aa["guardrail_one_sided_fpr"]] + [g["aa"]["guardrail_one_sided_fpr"] for g in grid])
    return {
        "config": asdict(config), "aa": aa, "power": power, "grid": grid,
        "sequential_fpr_within_alpha": aa["sequential_fpr"] <= alpha,
        "guardrail_fpr_within_alpha": worst_fpr <= alpha,
        "peeked_fixed_exceeds_alpha": aa["fixed_horizon_peeked_fpr"] > alpha,
        "elapsed_s": time.perf_counter() - t0,
    }


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson 95% interval of a proportion ``k / n``."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def summary_line(result: dict[str, Any]) -> dict[str, Any]:
    """The compact JSON the command prints last: level, headline power, power by design."""
    aa, pw = result["aa"], result["power"]

    def cell(g: dict[str, Any]) -> dict[str, Any]:
        key = f"{g['mode']}:{g['base_accuracy']:g}:{g['challenger_fraction'] if g['mode'] == 'split' else g['correlation']:g}"
        return {key: [round(g["one_sided"]["power_by_horizon"], 3), round(g["two_sided"]["power_by_horizon"], 3),
                      round(g["fixed_one_sided_theory_power"], 3), g["one_sided"]["median_outcomes_needed"]]}

    cells: dict[str, Any] = {}
    for g in result["grid"]:
        cells.update(cell(g))
    return {
        "fixed_horizon_peeked_fpr": aa["fixed_horizon_peeked_fpr"], "sequential_fpr": aa["sequential_fpr"],
        "guardrail_one_sided_fpr": aa["guardrail_one_sided_fpr"], "guardrail_two_sided_fpr": aa["guardrail_two_sided_fpr"],
        "power_by_horizon_one_sided": pw["one_sided"]["power_by_horizon"],
        "power_by_horizon_two_sided": pw["two_sided"]["power_by_horizon"],
        "fixed_one_sided_theory_power": pw["fixed_one_sided_theory_power"],
        "median_outcomes_needed_one_sided": pw["one_sided"]["median_outcomes_needed"],
        "grid_power_by_horizon_one_two_fixed_median": cells,
        "guardrail_fpr_within_alpha": result["guardrail_fpr_within_alpha"],
    }  # fmt: skip
