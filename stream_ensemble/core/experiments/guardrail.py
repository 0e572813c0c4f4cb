"""The guardrail and the canary ramp: when to stop a challenger and when to give it more traffic.

Both are decisions on a :class:`~stream_ensemble.core.experiments.statistics.Comparison`
(challenger − champion); the worker and ``ab`` commands apply them to Redis.

- The guardrail stops a challenger when it is worse with *anytime-valid* confidence (and at
  least ``min_outcomes`` of its outcomes have been joined). Two tests (``test``):

  - ``"one-sided"`` (default): the one-sided sequential p-value — running minimum over looks of
    the half-normal mixture SPRT's p-value on the worse side — drops below alpha. The question
    is directional ("is the challenger worse?"), the null is composite ("not worse"), and the
    whole of alpha goes to the side that stops: at the same level it stops a worse challenger
    sooner than the two-sided test (``bench ab-sim`` measures by how much) and still stops an
    equal one with probability <= alpha however often it is read.
  - ``"two-sided"``: the two-sided confidence sequence lies entirely on the worse side of 0
    (the report's sequence; at most alpha of equal challengers ever stopped, usually far less,
    since half of its error goes to "better").
- The ramp raises the challenger's weight through fixed steps (e.g. 5, 25, 50 %), one step
  after each ``outcomes_per_step`` joined challenger outcomes, only while the guardrail holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from stream_ensemble.core.experiments.statistics import Array, Comparison
from stream_ensemble.errors import ConfigError

Decision = Literal["stop", "continue"]
Winner = Literal["champion", "challenger", "undecided"]
GuardrailTest = Literal["one-sided", "two-sided"]
GUARDRAIL_TESTS: tuple[str, ...] = get_args(GuardrailTest)


@dataclass(frozen=True)
class GuardrailConfig:
    """``higher_is_better``: True for accuracy, False for log loss / Brier score; ``test``: see the module."""

    alpha: float = 0.05
    min_outcomes: int = 200
    higher_is_better: bool = True
    test: GuardrailTest = "one-sided"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"guardrail alpha must be in (0, 1), got {self.alpha}")
        if self.min_outcomes < 0:
            raise ConfigError(f"guardrail min_outcomes must be >= 0, got {self.min_outcomes}")
        if self.test not in GUARDRAIL_TESTS:
            raise ConfigError(f"guardrail test must be one of {', '.join(GUARDRAIL_TESTS)}, got {self.test!r}")


def _worse_sure(comparison: Comparison, higher_is_better: bool) -> bool:
    """The confidence sequence is entirely on the challenger-is-worse side of 0."""
    if higher_is_better:
        return bool(np.asarray(comparison.cs_high) < 0)
    return bool(np.asarray(comparison.cs_low) > 0)


def worse_p(comparison: Comparison, higher_is_better: bool) -> Array:
    """Per-look one-sided anytime-valid p-value that the challenger is worse (broadcasts).

    Its running minimum over looks (:func:`~.statistics.mixture_p_value`) is the guardrail's
    sequential p-value.
    """
    return np.asarray(comparison.mixture_p_below if higher_is_better else comparison.mixture_p_above)


def guardrail_decision(comparison: Comparison, challenger_outcomes: int, config: GuardrailConfig,
                       sequential_worse_p: float | None = None) -> Decision:
    """``"stop"`` when the challenger is worse with anytime-valid confidence, else ``"continue"``.

    Parameters
    ----------
    comparison : Comparison
        challenger − champion at this look (scalar fields).
    challenger_outcomes : int
        Outcomes joined in the challenger's arm (pairs, in shadow mode).
    config : GuardrailConfig
    sequential_worse_p : float, optional
        One-sided test: the running minimum of :func:`worse_p` over the looks so far, this one
        included (the caller carries it). Default: this look's :func:`worse_p` alone.
    """
    if challenger_outcomes < config.min_outcomes:
        return "continue"
    if config.test == "two-sided":
        return "stop" if _worse_sure(comparison, config.higher_is_better) else "continue"
    p = float(worse_p(comparison, config.higher_is_better)) if sequential_worse_p is None else sequential_worse_p
    return "stop" if p < config.alpha else "continue"


def winner(comparison: Comparison, sequential_p: float, config: GuardrailConfig) -> Winner:
    """The better arm when the sequential p-value is below alpha, else ``"undecided"``."""
    if not sequential_p < config.alpha or not np.isfinite(np.asarray(comparison.difference)):
        return "undecided"
    challenger_better = bool(np.asarray(comparison.difference) > 0) == config.higher_is_better
    return "challenger" if challenger_better else "champion"


@dataclass(frozen=True)
class Ramp:
    """Canary steps in percent of traffic (strictly increasing, each in (0, 100))."""

    steps: tuple[float, ...]
    outcomes_per_step: int = 500

    def __post_init__(self) -> None:
        if not self.steps:
            raise ConfigError("a ramp needs at least one step")
        if any(not 0 < s < 100 for s in self.steps) or any(b <= a for a, b in zip(self.steps, self.steps[1:])):
            raise ConfigError(f"ramp steps must be increasing percentages in (0, 100), got {list(self.steps)}")
        if self.outcomes_per_step < 1:
            raise ConfigError(f"outcomes per ramp step must be >= 1, got {self.outcomes_per_step}")

    @classmethod
    def parse(cls, text: str, outcomes_per_step: int = 500) -> Ramp:
        """``"5,25,50"`` -> ``Ramp((5, 25, 50))``; a bad list raises :class:`ConfigError`."""
        try:
            steps = tuple(float(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"ramp must be comma-separated percentages like 5,25,50, got {text!r}") from None
        return cls(steps, outcomes_per_step)

    def next_step(self, step: int, outcomes_at_step: int, decision: Decision) -> tuple[int, float]:
        """(step index, challenger weight in percent) after the latest look.

        Parameters
        ----------
        step : int
            Index of the current step in ``steps``.
        outcomes_at_step : int
            Challenger outcomes joined since the current step started.
        decision : {"stop", "continue"}
            The guardrail's decision at this look. ``"stop"`` gives weight 0.
        """
        if not 0 <= step < len(self.steps):
            raise ValueError(f"step {step} outside the ramp's {len(self.steps)} steps")
        if decision == "stop":
            return step, 0.0
        if outcomes_at_step >= self.outcomes_per_step and step + 1 < len(self.steps):
            step += 1
        return step, self.steps[step]
