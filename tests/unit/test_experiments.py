"""core.experiments: sticky assignment, the split / paired comparisons, the guardrail and the ramp."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from stream_ensemble.core.experiments import (
    GuardrailConfig,
    MetricSums,
    Ramp,
    assign_arms,
    compare,
    entity_hashes,
    guardrail_decision,
    mixture_p_value,
    winner,
)
from stream_ensemble.errors import ConfigError

KEYS = [f"entity-{i}" for i in range(100_000)]


def _binomial_99(n: int, p: float) -> tuple[float, float]:
    half = 2.5758 * np.sqrt(p * (1 - p) / n)
    return p - half, p + half


def test_assignment_is_deterministic_and_matches_the_weights() -> None:
    h = entity_hashes("salt-1", KEYS)
    arms = assign_arms(h, {"champion": 70, "challenger": 30})
    assert np.array_equal(arms, assign_arms(entity_hashes("salt-1", KEYS), {"champion": 70, "challenger": 30}))
    lo, hi = _binomial_99(len(KEYS), 0.3)
    assert lo <= np.mean(arms == 1) <= hi


def test_three_arms_get_their_shares() -> None:
    arms = assign_arms(entity_hashes("s", KEYS), {"a": 50, "b": 30, "c": 20})
    for i, p in enumerate((0.5, 0.3, 0.2)):
        lo, hi = _binomial_99(len(KEYS), p)
        assert lo <= np.mean(arms == i) <= hi


def test_raising_a_weight_moves_entities_only_into_that_arm_and_only_as_many_as_needed() -> None:
    h = entity_hashes("s", KEYS)
    before = assign_arms(h, {"champion": 70, "challenger": 30})
    after = assign_arms(h, {"champion": 50, "challenger": 50})
    moved = before != after
    assert np.all(after[moved] == 1)  # champion -> challenger only
    lo, hi = _binomial_99(len(KEYS), 0.2)  # the minimum: 20% of the traffic must move
    assert lo <= np.mean(moved) <= hi


def test_adding_a_challenger_takes_from_the_others_and_moves_nobody_between_them() -> None:
    h = entity_hashes("s", KEYS)
    before = assign_arms(h, {"champion": 80, "b": 20})
    after = assign_arms(h, {"champion": 80, "b": 20, "c": 25})
    moved = before != after
    assert np.all(after[moved] == 2)


def test_another_salt_reshuffles_and_zero_weight_gets_nothing() -> None:
    a = assign_arms(entity_hashes("s1", KEYS), {"x": 50, "y": 50})
    b = assign_arms(entity_hashes("s2", KEYS), {"x": 50, "y": 50})
    assert 0.45 < np.mean(a != b) < 0.55  # independent: half agree by chance
    assert np.all(assign_arms(entity_hashes("s1", KEYS[:1000]), {"x": 0, "y": 5}) == 1)


@pytest.mark.parametrize("weights", [{}, {"x": 0, "y": 0}, {"x": -1, "y": 2}, {"x": float("nan")}])
def test_bad_weights_raise(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        assign_arms(entity_hashes("s", ["a"]), weights)


def test_metric_sums_add_and_give_mean_and_variance() -> None:
    x, y = np.array([1.0, 0.0, 1.0]), np.array([0.5, 2.0])
    s = MetricSums.of(x) + MetricSums.of(y)
    both = np.concatenate([x, y])
    assert float(s.mean()) == pytest.approx(both.mean())
    assert float(s.variance()) == pytest.approx(both.var(ddof=1))
    assert np.isnan(MetricSums.zero().mean()) and np.isnan(MetricSums.of([1.0]).variance())


def test_split_comparison_matches_the_two_sample_z_test() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random(4000) < 0.78, rng.random(5000) < 0.80
    c = compare(MetricSums.of(a), MetricSums.of(b))
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    d = a.mean() - b.mean()
    assert float(c.difference) == pytest.approx(d)
    assert float(c.p_value) == pytest.approx(2 * norm.sf(abs(d) / se))
    assert float(c.low) == pytest.approx(d - 1.959964 * se, rel=1e-5)
    # the confidence sequence is wider than the fixed interval and its p-value larger
    assert float(c.cs_low) < float(c.low) and float(c.cs_high) > float(c.high)
    assert float(c.mixture_p) >= float(c.p_value)


def test_paired_comparison_uses_the_per_event_differences() -> None:
    rng = np.random.default_rng(2)
    champion = (rng.random(3000) < 0.8).astype(float)
    flip = rng.random(3000) < 0.03
    challenger = np.where(flip, 0.0, champion)  # same events, challenger wrong on 3% more
    d = challenger - champion
    paired = compare(MetricSums.of(challenger), MetricSums.of(champion), paired_difference=MetricSums.of(d))
    split = compare(MetricSums.of(challenger), MetricSums.of(champion))
    assert float(paired.difference) == pytest.approx(d.mean())
    assert float(paired.std_error) == pytest.approx(d.std(ddof=1) / np.sqrt(d.size))
    assert float(paired.std_error) < float(split.std_error) / 3  # pairing removes the shared noise
    assert float(paired.cs_high) < 0


def test_no_data_gives_no_decision() -> None:
    c = compare(MetricSums.zero(), MetricSums.of([1.0, 1.0, 1.0]))
    assert float(c.p_value) == 1.0 and float(c.mixture_p) == 1.0 and c.cs_low == -np.inf
    assert c.to_dict()["difference"] is None


def test_sequential_p_value_is_the_running_minimum() -> None:
    assert mixture_p_value([0.5, 0.2, 0.7, 0.1], previous=0.3).tolist() == [0.3, 0.2, 0.2, 0.1]


def test_anytime_valid_test_keeps_its_level_when_peeked_and_the_fixed_one_does_not() -> None:
    rng = np.random.default_rng(3)
    n_exp, n_out, every = 300, 3000, 50
    u = rng.random((2, n_exp, n_out)) < 0.7
    looks = np.arange(every, n_out + 1, every) - 1
    sa, sb = np.cumsum(u[0], axis=1)[:, looks], np.cumsum(u[1], axis=1)[:, looks]
    n = (looks + 1.0)[None, :] + 0 * sa
    c = compare(MetricSums(n, sa, sa), MetricSums(n, sb, sb))
    peeked = np.mean(np.any(c.p_value < 0.05, axis=1))
    sequential = np.mean(mixture_p_value(c.mixture_p, axis=1)[:, -1] < 0.05)
    assert peeked > 0.1  # 60 looks at a fixed-horizon test: false positives well above 5%
    assert sequential <= 0.05


def test_guardrail_stops_a_worse_challenger_only_with_enough_evidence() -> None:
    worse = compare(MetricSums.of(np.r_[np.ones(700), np.zeros(300)]), MetricSums.of(np.r_[np.ones(850), np.zeros(150)]))
    cfg = GuardrailConfig(min_outcomes=200)
    assert guardrail_decision(worse, 1000, cfg) == "stop"
    assert guardrail_decision(worse, 100, cfg) == "continue"
    assert winner(worse, float(worse.mixture_p), cfg) == "champion"
    # the same numbers as a loss (lower is better): the challenger is the better one
    as_loss = GuardrailConfig(higher_is_better=False)
    assert guardrail_decision(worse, 1000, as_loss) == "continue"
    assert winner(worse, float(worse.mixture_p), as_loss) == "challenger"
    close = compare(MetricSums.of(np.r_[np.ones(80), np.zeros(20)]), MetricSums.of(np.r_[np.ones(82), np.zeros(18)]))
    assert guardrail_decision(close, 1000, cfg) == "continue"
    assert winner(close, float(close.mixture_p), cfg) == "undecided"


def test_ramp_steps_up_while_the_guardrail_holds_and_drops_to_zero_when_it_fires() -> None:
    ramp = Ramp.parse("5,25,50", outcomes_per_step=100)
    assert ramp.steps == (5.0, 25.0, 50.0)
    assert ramp.next_step(0, 99, "continue") == (0, 5.0)
    assert ramp.next_step(0, 100, "continue") == (1, 25.0)
    assert ramp.next_step(2, 10_000, "continue") == (2, 50.0)
    assert ramp.next_step(1, 10_000, "stop") == (1, 0.0)


@pytest.mark.parametrize("text", ["", "5,x", "25,5", "0,10", "5,100"])
def test_bad_ramps_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        Ramp.parse(text)
