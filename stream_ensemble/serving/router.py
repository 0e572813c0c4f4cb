"""Experiment routing: a batch split by arm, each part scored once by its arm's ensemble version.

The router wraps one :class:`ScoringService` per loaded ensemble version and reads the
experiment (``se:ab:<ensemble>``, through an injected callable, so this module does no I/O)
at most every ``refresh_s`` seconds. Per batch:

- no running experiment (or none with a positive challenger weight): the champion scores
  everything, output unchanged;
- ``split``: each event's arm comes from the sticky hash of ``salt + entity_id`` (``event_id``
  when there is none; see ``core/experiments/assignment.py``); the batch is cut into one part
  per arm and each part is scored once by that arm's version;
- ``shadow``: the champion scores the whole batch (its output is the main output); the events
  assigned to a challenger are scored again by it, and those scores go to the shadow topic.

Scored events then carry ``experiment``, ``arm`` (``champion`` or the challenger's
``name@vN``) and ``ensemble_version``. A message that cannot even be parsed goes to the
champion's part (which dead-letters it), so nothing is lost or counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import orjson

from stream_ensemble.core.experiments.assignment import assign_arms, entity_hashes
from stream_ensemble.core.experiments.spec import CHAMPION, ExperimentSpec
from stream_ensemble.errors import StreamEnsembleError
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.types import BatchResult, RawMessage

log = logging.getLogger("stream_ensemble.serving.router")


def routing_key(value: bytes | None) -> str | None:
    """``entity_id`` (else ``event_id``) of a raw feature event, None when unparsable."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    key = doc.get("entity_id") or doc.get("event_id")
    return key if isinstance(key, str) and key else None


class ExperimentRouter:
    """Scores batches through the champion or, per arm, through the experiment's versions.

    Parameters
    ----------
    champion : ScoringService
        The deployed version (scores everything when no experiment runs).
    ensemble : str
        Ensemble name (the experiment is ``se:ab:<ensemble>``).
    read_experiment : callable () -> mapping of str
        The experiment hash's fields ({} when there is none); may raise, then the last
        known experiment is kept.
    load_version : callable (tag) -> ScoringService
        Loads another version (a challenger) from the registry; called once per version.
    refresh_s : float
        Longest time between reads of the experiment.
    """

    def __init__(self, champion: ScoringService, ensemble: str,
                 read_experiment: Callable[[], Mapping[str, str]],
                 load_version: Callable[[str], ScoringService], refresh_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.champion = champion
        self.ensemble = ensemble
        self.read_experiment = read_experiment
        self.load_version = load_version
        self.refresh_s = refresh_s
        self.clock = clock
        self.services: dict[str, ScoringService] = {champion.ensemble.tag: champion}
        self.spec: ExperimentSpec | None = None
        self._read_at = -np.inf
        self._fields: dict[str, str] = {}
        self._read_failing = False

    # ---------------------------------------------------------------- state
    def refresh(self) -> ExperimentSpec | None:
        """Re-read the experiment when ``refresh_s`` has passed; returns the one in force."""
        now = self.clock()
        if now - self._read_at < self.refresh_s:
            return self.spec
        self._read_at = now
        try:
            fields = dict(self.read_experiment())
        except Exception as exc:  # Redis is advisory: keep the last known experiment
            if not self._read_failing:  # one line per state change, not one per read
                log.warning("cannot read the experiment of %s, keeping the last one: %s", self.ensemble, exc,
                            extra={"event": "experiment_read", "state": "failing", "reason": str(exc)})
            self._read_failing = True
            return self.spec
        if self._read_failing:
            self._read_failing = False
            log.info("experiment of %s readable again", self.ensemble, extra={"event": "experiment_read", "state": "ok"})
        if fields == self._fields:
            return self.spec
        self._fields = fields
        self.spec = self._parse(fields)
        return self.spec

    def _parse(self, fields: dict[str, str]) -> ExperimentSpec | None:
        if not fields:
            return None
        try:
            spec = ExperimentSpec.from_fields(self.ensemble, fields)
            for tag in [spec.champion, *spec.challengers]:
                if tag not in self.services:
                    self.services[tag] = self.load_version(tag)
        except (StreamEnsembleError, ValueError) as exc:
            log.warning("experiment of %s ignored: %s", self.ensemble, exc,
                        extra={"event": "experiment", "error": str(exc)})
            return None
        log.info("experiment %s: %s, champion %s, challengers %s", spec.experiment, spec.status, spec.champion,
                 spec.to_fields()["challengers"], extra={"event": "experiment", **spec.to_fields()})
        return spec

    def _active(self) -> ExperimentSpec | None:
        spec = self.refresh()
        if spec is None or not spec.running or not any(w > 0 for w in spec.challengers.values()):
            return None
        return spec

    # ---------------------------------------------------------------- batch
    def arms_of(self, spec: ExperimentSpec, messages: Sequence[RawMessage]) -> list[str]:
        """Each message's arm (``champion`` for unparsable ones)."""
        keys = [routing_key(m.value) for m in messages]
        weights = spec.weights()
        names = list(weights)
        idx = assign_arms(entity_hashes(spec.salt, [k or "" for k in keys]), weights)
        return [names[i] if k is not None else CHAMPION for i, k in zip(idx, keys)]

    def handle(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Score a batch (same contract as :meth:`ScoringService.handle`, plus ``shadow``)."""
        spec = self._active()
        if spec is None:
            self.champion.experiment = None
            self.champion.arm = CHAMPION
            return self.champion.handle(messages)
        arms = self.arms_of(spec, messages)
        champion = self.services[spec.champion]
        if spec.mode == "shadow":
            result = self._score(champion, spec, CHAMPION, messages)
            result.arms[(spec.experiment, CHAMPION)] = len(messages)
            for arm in spec.challengers:
                part = [m for m, a in zip(messages, arms) if a == arm]
                if part:
                    result.shadow.extend(self._score(self.services[arm], spec, arm, part).scored)
                    result.arms[(spec.experiment, arm)] = len(part)
            return result
        result = BatchResult()
        for arm in [CHAMPION, *spec.challengers]:
            part = [m for m, a in zip(messages, arms) if a == arm]
            if not part:
                continue
            got = self._score(champion if arm == CHAMPION else self.services[arm], spec, arm, part)
            result.arms[(spec.experiment, arm)] = len(part)
            result.scored.extend(got.scored)
            result.dead_letters.extend(got.dead_letters)
            result.cache_hits += got.cache_hits
            result.cache_misses += got.cache_misses
            for why, k in got.degraded.items():
                result.degraded[why] = result.degraded.get(why, 0) + k
            result.selection_id = result.selection_id or got.selection_id
        return result

    @staticmethod
    def _score(service: ScoringService, spec: ExperimentSpec, arm: str, part: Sequence[RawMessage]) -> BatchResult:
        service.experiment = spec.experiment
        service.arm = arm
        return service.handle(part)
