"""Circuit breakers per member: stop calling a member that keeps failing, probe it later.

Only whole-batch outcomes count: a member that produced no valid row of a batch (raised
everywhere, NaN / out-of-range everywhere, timed out, or was still busy with an earlier
late call) is a failure; a member that dropped some poison rows and scored the others is a
success (per-row isolation already handled those rows).

States (``closed`` -> ``open`` -> ``half_open`` -> ``closed`` or ``open``):

* ``closed``: the member runs; ``threshold`` consecutive failures open the breaker.
* ``open``: the member is skipped (the strategy re-selects among the others) for
  ``cooldown_s`` seconds.
* ``half_open``: after the cool-down, the next batch that needs the member runs it once as a
  probe; success closes the breaker, failure opens it again for another cool-down.

The breakers only report: every transition goes to the ``listener`` the edge installs (the
adapter logs it, writes it to Redis and to the metrics). Pure: no I/O here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    """One breaker state change.

    Attributes
    ----------
    member : str
        Member tag (``name@vN``).
    old, new : str
        ``closed``, ``open`` or ``half_open``.
    failures : int
        Consecutive whole-batch failures when it happened.
    reason : str
        The last failure's reason (``member_timeout``, ``member_error``) or ``probe_ok`` /
        ``cooldown_over``.
    """

    member: str
    old: str
    new: str
    failures: int
    reason: str


@dataclass
class _State:
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    reason: str = ""


class CircuitBreakers:
    """One breaker per member tag, created closed on first use.

    Parameters
    ----------
    threshold : int
        Consecutive whole-batch failures that open a breaker; 0 disables breakers (every
        member is always allowed).
    cooldown_s : float
        Seconds a breaker stays open before a half-open probe.
    listener : callable, optional
        Called with every :class:`Transition`, in the scoring thread.
    clock : callable
        Monotonic seconds (tests pass a fake).
    """

    def __init__(self, threshold: int = 3, cooldown_s: float = 30.0,
                 listener: Callable[[Transition], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.listener = listener
        self.clock = clock
        self._states: dict[str, _State] = {}

    def state(self, member: str) -> str:
        """Current state of ``member``'s breaker."""
        s = self._states.get(member)
        return s.state if s is not None else CLOSED

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every breaker that is not closed or has failures: ``{tag: {state, failures, reason}}``."""
        return {tag: {"state": s.state, "failures": s.failures, "reason": s.reason}
                for tag, s in sorted(self._states.items()) if s.state != CLOSED or s.failures}

    def allowed(self, member: str) -> bool:
        """May ``member`` run on this batch? An open breaker past its cool-down turns half-open."""
        if self.threshold <= 0:
            return True
        s = self._states.get(member)
        if s is None or s.state != OPEN:
            return True
        if self.clock() - s.opened_at < self.cooldown_s:
            return False
        self._move(member, s, HALF_OPEN, "cooldown_over")
        return True

    def record(self, member: str, ok: bool, reason: str = "") -> None:
        """The outcome of ``member`` on one batch it ran on (or was skipped as busy on).

        Parameters
        ----------
        member : str
        ok : bool
            True when the member scored at least one row of the batch.
        reason : str
            Failure reason code (``member_timeout``, ``member_error``) when not ``ok``.
        """
        if self.threshold <= 0:
            return
        s = self._states.setdefault(member, _State())
        if ok:
            s.failures = 0
            if s.state != CLOSED:
                self._move(member, s, CLOSED, "probe_ok")
            return
        s.failures += 1
        s.reason = reason
        if s.state == HALF_OPEN or (s.state == CLOSED and s.failures >= self.threshold):
            s.opened_at = self.clock()
            self._move(member, s, OPEN, reason)

    def _move(self, member: str, s: _State, new: str, reason: str) -> None:
        old, s.state = s.state, new
        if self.listener is not None:
            self.listener(Transition(member, old, new, s.failures, reason))
