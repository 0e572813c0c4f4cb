"""The guardrail and the canary ramp: when to stop a challenger and when to give it more traffic.

Both are decisions on a :class:`~stream_ensemble.core.experiments.statistics.Comparison`
(challenger − champion); the worker and ``ab`` commands apply them to Redis.

- The guardrail stops a challenger when it is worse with *anytime-valid* confidence: the
  confidence sequence lies entirely on the worse side of 0 (and at least ``min_outcomes`` of its
  outcomes have been joined). The confidence sequence holds at every look simultaneously, so
  checking it after every batch does not inflate the chance of stopping a good challenger.
- The ramp raises the challenger's weight through fixed steps (e.g. 5, 25, 50 %), one step
  after each ``outcomes_per_step`` joined challenger outcomes, only while the guardrail holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from stream_ensemble.core.experiments.statistics import Comparison
from stream_ensemble.errors import ConfigError

Decision = Literal["stop", "continue"]
Winner = Literal["champion", "challenger", "undecided"]


@dataclass(frozen=True)
class GuardrailConfig:
    """``higher_is_better``: True for accuracy, False for log loss / Brier score."""

    alpha: float = 0.05
    min_outcomes: int = 200
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"guardrail alpha must be in (0, 1), got {self.alpha}")
        if self.min_outcomes < 0:
            raise ConfigError(f"guardrail min_outcomes must be >= 0, got {self.min_outcomes}")


def _worse_sure(comparison: Comparison, higher_is_better: bool) -> bool:
    """The confidence sequence is entirely on the challenger-is-worse side of 0."""
    if higher_is_better:
        return bool(np.asarray(comparison.cs_high) < 0)
    return bool(np.asarray(comparison.cs_low) > 0)


def guardrail_decision(comparison: Comparison, challenger_outcomes: int, config: GuardrailConfig) -> Decision:
    """``"stop"`` when the challenger is worse with anytime-valid confidence, else ``"continue"``."""
    if challenger_outcomes < config.min_outcomes:
        return "continue"
    return "stop" if _worse_sure(comparison, config.higher_is_better) else "continue"


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
