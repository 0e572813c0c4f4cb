"""The guardrail's one-sided anytime-valid test: exact closed form, level under peeking, power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from stream_ensemble.config import ABConfig
from stream_ensemble.config.sections import GUARDRAIL_TESTS as CONFIG_TESTS
from stream_ensemble.core.experiments import (
    GUARDRAIL_TESTS,
    GuardrailConfig,
    MetricSums,
    compare,
    guardrail_decision,
    mixture_p_value,
    worse_p,
)
from stream_ensemble.core.experiments.join import ECE_BINS, METRICS
from stream_ensemble.core.experiments.spec import ExperimentSpec
from stream_ensemble.core.experiments.statistics import DEFAULT_MIXTURE_SCALE
from stream_ensemble.core.experiments.summary import summarize
from stream_ensemble.errors import ConfigError

ALPHA = 0.05


def _split_looks(rng: np.random.Generator, p0: float, p1: float, n_exp: int = 300, n_out: int = 3000,
                 every: int = 50) -> tuple[MetricSums, MetricSums]:
    """Cumulative arm sums at each look of ``n_exp`` 50/50 split experiments: shape (n_exp, looks)."""
    to_c = rng.random((n_exp, n_out)) < 0.5
    right = np.where(to_c, rng.random((n_exp, n_out)) < p1, rng.random((n_exp, n_out)) < p0)
    idx = np.arange(every, n_out + 1, every) - 1
    nc = np.cumsum(to_c, axis=1)[:, idx].astype(float)
    sc = np.cumsum(right & to_c, axis=1)[:, idx].astype(float)
    s0 = np.cumsum(right, axis=1)[:, idx].astype(float) - sc
    n0 = (idx + 1.0)[None, :] - nc
    return MetricSums(nc, sc, sc), MetricSums(n0, s0, s0)


def _first_stop(p: np.ndarray) -> np.ndarray:
    """Index of the first look where the sequential p < alpha, or a large number when never."""
    hit = mixture_p_value(p, axis=1) < ALPHA
    return np.where(hit.any(axis=1), hit.argmax(axis=1), 10**9)


def test_closed_form_equals_the_half_normal_mixture_integral() -> None:
    c = compare(MetricSums.of(np.r_[np.ones(700), np.zeros(300)]), MetricSums.of(np.r_[np.ones(740), np.zeros(260)]))
    d, var = float(c.difference), float(c.std_error) ** 2
    vc, v0 = 0.7 * 0.3 * 1000 / 999, 0.74 * 0.26 * 1000 / 999
    tau2 = DEFAULT_MIXTURE_SCALE**2 * (vc + v0)
    lr = integrate.quad(lambda t: 2 * np.exp(-t * t / (2 * tau2)) / np.sqrt(2 * np.pi * tau2)
                        * np.exp(t * d / var - t * t / (2 * var)), -np.inf, 0)[0]  # fmt: skip
    assert float(c.mixture_p_below) == pytest.approx(1 / lr, rel=1e-6)
    assert float(c.mixture_p_above) == 1.0  # no evidence for "better"
    # on the side of the estimate the one-sided p is below the two-sided one
    assert float(c.mixture_p_below) < float(c.mixture_p) < 1.0


def test_aa_false_stops_stay_within_alpha_when_peeked_at_every_look() -> None:
    rng = np.random.default_rng(11)
    ch, champ = _split_looks(rng, 0.8, 0.8)
    c = compare(ch, champ)
    one_sided = np.mean(_first_stop(worse_p(c, True)) < 10**9)
    peeked_fixed = np.mean(np.any(c.difference / c.std_error < -1.6449, axis=1))  # one-sided z, peeked
    assert one_sided <= ALPHA
    assert peeked_fixed > 2 * ALPHA  # the same looks break a fixed-horizon one-sided test


def test_aa_false_stops_stay_within_alpha_for_paired_shadow_arms() -> None:
    rng = np.random.default_rng(12)
    n_exp, n_out, every = 300, 3000, 50
    # both arms right with 0.85, correctness correlated (they share most errors): d in {-1, 0, 1}
    u = rng.random((n_exp, n_out))
    champion = u < 0.85
    challenger = np.where(rng.random((n_exp, n_out)) < 0.6, champion, rng.random((n_exp, n_out)) < 0.85)
    d = challenger.astype(float) - champion
    idx = np.arange(every, n_out + 1, every) - 1
    s, sq = np.cumsum(d, axis=1)[:, idx], np.cumsum(d * d, axis=1)[:, idx]
    paired = MetricSums((idx + 1.0)[None, :] + 0 * s, s, sq)
    c = compare(MetricSums.zero(), MetricSums.zero(), paired_difference=paired)
    assert np.mean(_first_stop(worse_p(c, True)) < 10**9) <= ALPHA


def test_one_sided_stops_a_worse_challenger_more_often_and_never_later_than_two_sided() -> None:
    rng = np.random.default_rng(13)
    c = compare(*_split_looks(rng, 0.80, 0.75))
    one = _first_stop(worse_p(c, True))
    cs_hit = c.cs_high < 0
    two = np.where(cs_hit.any(axis=1), cs_hit.argmax(axis=1), 10**9)
    assert np.all(one <= two)  # on the worse side L_below = 2 L Phi(.) >= L at every look
    power_one, power_two = np.mean(one < 10**9), np.mean(two < 10**9)
    assert power_one > power_two + 0.03
    assert power_one > 0.6  # 5 points worse, 1,500 outcomes per arm by the end
    better = compare(*_split_looks(rng, 0.80, 0.85))
    assert np.mean(_first_stop(worse_p(better, True)) < 10**9) == 0.0  # a better challenger is never stopped


def test_guardrail_decision_by_test_and_direction() -> None:
    worse = compare(MetricSums.of(np.r_[np.ones(743), np.zeros(257)]), MetricSums.of(np.r_[np.ones(800), np.zeros(200)]))
    one, two = GuardrailConfig(), GuardrailConfig(test="two-sided")
    assert one.test == "one-sided"  # the default
    assert float(worse_p(worse, True)) < ALPHA < float(worse.mixture_p)  # one-sided enough, two-sided not
    assert guardrail_decision(worse, 1000, one) == "stop"
    assert guardrail_decision(worse, 1000, two) == "continue"
    assert guardrail_decision(worse, 100, one) == "continue"  # before min_outcomes
    assert guardrail_decision(worse, 1000, one, sequential_worse_p=0.5) == "continue"  # the carried value decides
    loss = GuardrailConfig(higher_is_better=False)  # the same numbers as a loss: the challenger is better
    assert guardrail_decision(worse, 1000, loss) == "continue"
    with pytest.raises(ConfigError):
        GuardrailConfig(test="three-sided")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ABConfig(guardrail_test="sideways")
    assert tuple(CONFIG_TESTS) == GUARDRAIL_TESTS


def _merged(n_champion: int, right_champion: int, n_challenger: int, right_challenger: int) -> dict[str, object]:
    def arm(n: int, k: int) -> dict[str, object]:
        # the join's sum list: n, then sum and sum of squares of each metric, then the ECE bins
        return {"members": {"ensemble": [float(n), float(k), float(k)] + [0.0] * (2 * len(METRICS) - 2 + 3 * ECE_BINS)}}
    return {"stats": {"x": {"arms": {"champion": arm(n_champion, right_champion), "m@v2": arm(n_challenger, right_challenger)},
                            "paired": {}}}}


def test_summary_carries_the_one_sided_sequential_p_between_looks() -> None:
    spec = ExperimentSpec.from_fields("m", {"experiment": "x", "champion": "m@v1", "challengers": "m@v2=50"})
    merged = _merged(1000, 800, 1000, 790)
    c = summarize(spec, merged, metric="accuracy", alpha=ALPHA, min_outcomes=200)["comparisons"]["m@v2"]
    assert c["guardrail_test"] == "one-sided" and c["guardrail"] == "continue" and c["worse_sequential_p_value"] > ALPHA
    carried = summarize(spec, merged, metric="accuracy", alpha=ALPHA, min_outcomes=200,
                        previous_worse_p={"m@v2": 0.01})["comparisons"]["m@v2"]
    assert carried["worse_sequential_p_value"] == 0.01 and carried["guardrail"] == "stop"
    two = summarize(spec, merged, metric="accuracy", alpha=ALPHA, min_outcomes=200, guardrail_test="two-sided",
                    previous_worse_p={"m@v2": 0.01})["comparisons"]["m@v2"]
    assert two["guardrail"] == "continue"  # the two-sided test reads the confidence sequence
    early = summarize(spec, _merged(1000, 800, 100, 10), metric="accuracy", alpha=ALPHA, min_outcomes=200,
                      previous_worse_p={"m@v2": 0.3})["comparisons"]["m@v2"]
    assert early["worse_sequential_p_value"] == 0.3 and early["guardrail"] == "continue"  # burn-in: look skipped
