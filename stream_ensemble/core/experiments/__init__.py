"""Experiments, pure: which arm an event goes to, and whether a challenger is better or worse.

- :mod:`.assignment` — deterministic, sticky arm assignment (weighted rendezvous hashing of
  ``salt + entity_id``): the same entity stays in its arm while the weights are unchanged, and
  when a weight changes only the entities that must move do.
- :mod:`.statistics` — per-arm metric from running sums with its interval; the difference
  challenger − champion for split arms (independent samples) and shadow arms (paired on the
  same events), as a fixed-horizon interval and p-value and as an anytime-valid confidence
  sequence with its sequential p-value (normal-mixture sequential probability ratio test).
- :mod:`.guardrail` — the guardrail decision (one-sided sequential test by default) and the
  canary ramp (``--ramp 5,25,50``).

No I/O: the worker, the outcome join and the benchmarks feed these functions arrays and sums.
"""

from stream_ensemble.core.experiments.assignment import assign_arms, entity_hashes
from stream_ensemble.core.experiments.guardrail import (
    GUARDRAIL_TESTS,
    GuardrailConfig,
    Ramp,
    guardrail_decision,
    winner,
    worse_p,
)
from stream_ensemble.core.experiments.statistics import (
    Comparison,
    MetricSums,
    compare,
    mixture_p_value,
)

__all__ = [
    "GUARDRAIL_TESTS", "Comparison", "GuardrailConfig", "MetricSums", "Ramp", "assign_arms", "compare",
    "entity_hashes", "guardrail_decision", "mixture_p_value", "winner", "worse_p",
]  # fmt: skip
