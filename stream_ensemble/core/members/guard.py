"""What protects a batch from its members: a deadline per member and a breaker per member.

:class:`MemberGuard` is owned by the scoring service (it outlives hot deploys: breakers are
keyed by member tag ``name@vN``, so a new version of a member starts closed). The serving
path asks it which healthy members to skip (breaker open, or still busy with a late call),
runs the pool through its threads, and reports each member's outcome back; the guard feeds
the breakers and the ``on_member`` listener (metrics and logs, installed by the edge).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from stream_ensemble.core.members.breaker import CircuitBreakers
from stream_ensemble.core.members.deadline import MemberThreads

#: Reason codes of a member missing from a batch (also the ``degraded_reason`` values).
MEMBER_TIMEOUT, MEMBER_ERROR, BREAKER_OPEN = "member_timeout", "member_error", "breaker_open"


def failure_code(why: str) -> str:
    """Reason code of a pool failure text (``timed_out: ...`` / ``failed: ...``)."""
    return MEMBER_TIMEOUT if why.startswith("timed_out") else MEMBER_ERROR


@dataclass
class MemberGuard:
    """Deadline, threads and breakers of the members one service runs.

    Attributes
    ----------
    deadline_s : float or None
        Wall-time limit of one member call on one batch (isolation retries included);
        ``None`` or 0: no limit, members run inline in the scoring thread.
    breakers : CircuitBreakers
        Disabled (threshold 0) unless the edge configures them.
    on_member : callable, optional
        ``(tag, seconds, reason or None)`` for every member that ran or was skipped as busy.
    threads : MemberThreads
    """

    deadline_s: float | None = None
    breakers: CircuitBreakers = field(default_factory=lambda: CircuitBreakers(threshold=0))
    on_member: Callable[[str, float, str | None], None] | None = None
    threads: MemberThreads = field(default_factory=MemberThreads)

    @property
    def threaded(self) -> MemberThreads | None:
        """The threads to run members on, or None when there is no deadline."""
        return self.threads if self.deadline_s else None

    def skipped(self, tags: Sequence[str], candidates: Iterable[bool]) -> dict[int, str]:
        """Candidate members that must not run on this batch, position -> reason code.

        A member still running a late call is ``member_timeout``; a member whose breaker is
        open is ``breaker_open`` (an open breaker past its cool-down turns half-open here and
        the member is allowed, as the probe).
        """
        out: dict[int, str] = {}
        for j, (tag, cand) in enumerate(zip(tags, candidates)):
            if not cand:
                continue
            if self.deadline_s and self.threads.busy(tag):  # lanes by tag: a new version starts free
                out[j] = MEMBER_TIMEOUT
            elif not self.breakers.allowed(tag):
                out[j] = BREAKER_OPEN
        return out

    def report(self, tag: str, seconds: float, reason: str | None, count: bool = True,
               rows_reason: str | None = None) -> None:
        """One member's outcome on a batch: ``reason`` None = it scored at least one row.

        ``count=False`` reports without feeding the breaker (a busy member the batch did not
        call). ``rows_reason``: the member dropped some rows only (``member_error_rows``...):
        counted in the metrics, not by the breaker.
        """
        if count:
            self.breakers.record(tag, reason is None, reason or "")
        if self.on_member is not None:
            self.on_member(tag, seconds, reason or rows_reason)
