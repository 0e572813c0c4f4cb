"""Experiments at the edge: the faust-streaming outcome join and the loop that applies the guardrail.

- :mod:`.faust_app` -- ``stream-ensemble ab evaluate``: a faust app on the same broker that joins
  scored events (``scores``, ``scores.shadow``) with ``outcomes`` in changelog-backed tables.
- :mod:`.control` -- one look at every running experiment: merged sums -> report, guardrail,
  canary ramp, history point (run each second by the join's leader, and by ``ab report``).

May import the core, serving, adapters and config (it is an edge layer, like the worker).
"""
