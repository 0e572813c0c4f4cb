"""Hot deploy: watch the fleet's target version, load and validate it off the scoring path,
swap it in between batches.

The watcher's thread reads the target (``se:deploy:<ensemble>`` through a
:class:`~stream_ensemble.ports.DeployStore`) every ``poll_s``; when it names a version that is
not the active one, the thread loads it (every artifact's sha256 checked by the registry),
validates it (:func:`~stream_ensemble.serving.versions.validate_candidate`) and, when it
passes, holds it as *pending*. The scoring thread calls :meth:`DeployWatcher.apply` before
each batch: that is the only place the active version changes, so a batch is scored wholly by
one version. A refused version costs one log line (and one record in the store); the old
version keeps serving, and the same target is not retried until the target changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stream_ensemble.ports import DeployStore
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.serving.versions import LoadedEnsembles, parse_tag, topic_features, validate_candidate

log = logging.getLogger("stream_ensemble.deploy")

#: Loads ``(name, version)``: the ensemble and its stored smoke rows (raw feature dicts).
Loader = Callable[[str, int], tuple[ServingEnsemble, Sequence[Mapping[str, Any]]]]


class DeployWatcher:
    """Follows a fleet's deploy target for one worker.

    Parameters
    ----------
    held : LoadedEnsembles
        The worker's loaded versions; the active one is what its service scores with.
    store : DeployStore
    load : Loader
    poll_s : float
        Seconds between reads of the target (a new target is seen within this).
    seen_features : callable, optional
        Feature names seen in recent events (widens the topic schema beyond the active
        version's features).
    on_swap : callable, optional
        ``on_swap(old, new)`` after a swap, in the scoring thread.
    on_refuse : callable, optional
        ``on_refuse(tag)`` after a refusal, in the watcher's thread.
    """

    def __init__(self, held: LoadedEnsembles, store: DeployStore, load: Loader, poll_s: float = 0.5,
                 seen_features: Callable[[], frozenset[str]] | None = None,
                 on_swap: Callable[[ServingEnsemble, ServingEnsemble], None] | None = None,
                 on_refuse: Callable[[str], None] | None = None) -> None:
        self.held = held
        self.store = store
        self.load = load
        self.poll_s = poll_s
        self.seen_features = seen_features or frozenset
        self.on_swap = on_swap
        self.on_refuse = on_refuse
        self.refusals: dict[str, str] = {}
        self.swaps = 0
        self._pending: str | None = None
        self._last_refused: str | None = None
        self._lock = threading.Lock()  # guards _pending between the two threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------- loader thread
    def check_once(self) -> str | None:
        """Read the target; load and validate it when it is new. Returns the pending tag."""
        target = self.store.target()
        if target == self.held.active_tag:
            with self._lock:  # set back before a pending version was swapped in: keep the active one
                self._pending = None
            self._last_refused = None
            return None
        if target is None or target in (self._pending, self._last_refused):
            return self._pending
        reason: str | None
        if self.held.get(target) is not None:  # e.g. a rollback to a version still held
            reason = None
        else:
            reason = self._load_and_validate(target)
        if reason is not None:
            self._last_refused = target
            self.refusals[target] = reason
            log.warning("deploy %s refused, still serving %s: %s", target, self.held.active_tag, reason,
                        extra={"event": "deploy_refused", "version": target, "serving": self.held.active_tag,
                               "reason": reason})
            self.store.refused(target, reason)
            if self.on_refuse is not None:
                self.on_refuse(target)
            return self._pending
        self._last_refused = None
        with self._lock:
            self._pending = target
        return target

    def _load_and_validate(self, target: str) -> str | None:
        t0 = time.perf_counter()
        try:
            name, version = parse_tag(target)
            candidate, rows = self.load(name, version)
        except Exception as exc:  # missing, tampered, unreadable: refused, never a crash
            return f"cannot load: {exc}"
        reason = validate_candidate(candidate, topic_features([self.held.active], self.seen_features()), rows)
        if reason is None:
            self.held.add(candidate)
            log.info("deploy %s loaded and validated in %.0f ms", target, (time.perf_counter() - t0) * 1e3,
                     extra={"event": "deploy_ready", "version": target})
        return reason

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check_once()
            except Exception:  # the watcher must outlive any bug in one check
                log.exception("deploy check failed")

    def start(self) -> DeployWatcher:
        """Check once now (synchronously), then every ``poll_s`` in a daemon thread."""
        self.check_once()
        self._thread = threading.Thread(target=self._run, name="deploy-watcher", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ------------------------------------------------------ scoring thread
    def apply(self, service: Any) -> ServingEnsemble | None:
        """Swap a pending version into ``service`` (anything with an ``ensemble`` attribute).

        Call between batches only. Returns the new version, or ``None`` when nothing changed.
        """
        with self._lock:
            tag, self._pending = self._pending, None
        if tag is None:
            return None
        old = service.ensemble
        new = self.held.activate(tag)
        service.ensemble = new
        self.swaps += 1
        log.info("now serving %s (was %s)", new.tag, old.tag,
                 extra={"event": "deploy_swap", "version": new.tag, "previous": old.tag})
        if self.on_swap is not None:
            self.on_swap(old, new)
        return new
