"""A watchdog for input partitions the faust app has stopped reading (``ab evaluate``).

Why: after a kill -9 and restart, 2 of ~18 runs of the kill -9 test left one input partition
unread: the broker had records past its committed offset, the app read none of them, and its
commit stayed where it was until the next restart (``README.md``, Outcome join). Reading
faust-streaming 0.15.3 gives more than one way for a partition to end up there, none of them
reproduced with the state logged:

* ``Consumer.on_buffer_full`` takes it out of the fetcher's active set and only the queue's
  pressure-drop callback puts it back; the flow-control resume clears the queue (``clear``)
  but not the pending callbacks, and with no later record of any partition the callback
  never runs;
* it is left out of the active set (``pause_partitions``) by a rebalance whose recovery
  handed over to a newer generation;
* faust's read offset for it is ahead of records it never processed (a queue emptied under
  it), so the re-fetched copies are dropped as already read and the acks have a hole at
  their head that the commit cannot pass.

So this does not bet on one cause. Every ``interval`` it asks the broker for the end offset
of each assigned input partition (the changelogs are faust's recovery's business) and calls
a partition *stalled* when, for ``stall_s``, it had records past its committed offset while
its committed offset and faust's read offset stood still and nothing of it was in an agent's
queue or being processed. The last condition is what tells a stopped partition from a slow
agent: a partition whose records wait in a queue is not stalled however long they wait.

A stalled partition gets one structured log line (``event: partition_stalled``, with the
faust state that explains it) and is restarted the way ``ab/recovery.py`` restarts all of
them after a rebalance: taken out of the active set (no record of it is delivered from now
on, even from a batch being delivered), given ``settle_s`` for a delivery already under way
to finish, sought to its committed offset in the consumer's thread (aiokafka drops what it
had buffered for it; faust's read offset becomes the committed offset, so the first record
delivered is the committed one and no gap is recorded), and put back in the active set.
Records between the committed offset and where the app had got to are read again; the
join counts a re-delivered score or outcome as a duplicate (``core/experiments/join.py``),
exactly as after a kill -9, so nothing is counted twice and nothing is skipped. A rebalance
while this runs wins: the repair stops and leaves the partitions to the new generation.

Uses faust-streaming 0.15.x internals (``pyproject.toml`` pins 0.15): the consumer's
``_committed_offset``, ``_read_offset``, ``_unacked_messages``, ``_buffered_partitions`` and
``_paused_partitions``, and the conductor's ``_tp_index`` with its channels' queues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("stream_ensemble.ab")


@dataclass(slots=True)
class _Mark:
    committed: int | None
    read: int | None
    since: float


class StallTracker:
    """Which partitions are stalled, from successive observations (no faust, no I/O).

    Parameters
    ----------
    stall_s : float
        Seconds a partition must lag with no progress and nothing in flight to be stalled.
    """

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._marks: dict[Any, _Mark] = {}

    def observe(self, now: float, tp: Any, committed: int | None, read: int | None, end: int,
                in_flight: bool) -> bool:
        """Record one observation of ``tp``; True when it is stalled.

        Parameters
        ----------
        now : float
            Monotonic time of the observation.
        tp : hashable
            The partition.
        committed : int or None
            Its committed offset (the next offset to process); None when nothing is committed.
        read : int or None
            faust's read offset (the last offset delivered to the agents).
        end : int
            The broker's end offset (the offset the next record produced will get).
        in_flight : bool
            Whether a record of it is in an agent's queue or being processed.

        Returns
        -------
        bool
            True when it has lagged for ``stall_s`` with neither offset moving and nothing in flight.
        """
        lag = end - (committed or 0)
        mark = self._marks.get(tp)
        if lag <= 0 or in_flight or mark is None or (mark.committed, mark.read) != (committed, read):
            # caught up, busy, or moving: the stall clock (re)starts here
            self._marks[tp] = _Mark(committed, read, now)
            return False
        return now - mark.since >= self.stall_s

    def reset(self, tp: Any) -> None:
        """Start ``tp``'s clock again (after it was restarted)."""
        self._marks.pop(tp, None)

    def forget(self, keep: Iterable[Any] = ()) -> None:
        """Drop every partition not in ``keep`` (all of them by default)."""
        keep = set(keep)
        for tp in [tp for tp in self._marks if tp not in keep]:
            del self._marks[tp]


class PartitionWatchdog:
    """Finds and restarts stalled input partitions of a running faust app.

    Parameters
    ----------
    app : faust.App
        The app (started; its timer calls :meth:`check`).
    stall_s : float
        See :class:`StallTracker`.
    settle_s : float
        Seconds between taking a stalled partition out of the active set and seeking it.
    """

    def __init__(self, app: Any, stall_s: float, settle_s: float = 0.5) -> None:
        self.app = app
        self.settle_s = settle_s
        self.tracker = StallTracker(stall_s)
        self.restarts = 0
        self._generation: int | None = None

    def _steady(self) -> bool:
        # Between a rebalance's start and the end of its recovery faust owns every pause and
        # seek; the watchdog looks only at a steady consumer.
        app = self.app
        return not app.in_recovery and app.flow_control.is_active() and app.consumer.flow_active

    def _in_flight(self, tp: Any) -> bool:
        consumer = self.app.consumer
        if any(m.tp == tp for m in list(consumer._unacked_messages)):
            return True
        for channel in self.app.topics._tp_index.get(tp, ()):
            queue = getattr(channel, "queue", None)
            if queue is not None and any(getattr(getattr(ev, "message", None), "tp", None) == tp
                                         for ev in list(queue._queue)):
                return True
        return False

    def _state(self, tp: Any) -> dict[str, Any]:
        consumer = self.app.consumer
        return {"active": tp in consumer._get_active_partitions(), "paused": tp in consumer._paused_partitions,
                "buffered": tp in consumer._buffered_partitions, "acked_pending": len(consumer._acked.get(tp, ())),
                "generation": self.app.consumer_generation_id}

    async def check(self) -> list[Any]:
        """One look at every assigned input partition; restart the stalled ones.

        Returns
        -------
        list
            The partitions restarted by this call.
        """
        app = self.app
        consumer = app.consumer
        if not self._steady() or app.consumer_generation_id != self._generation:
            # a new generation starts with fresh clocks: nothing is stalled before stall_s of it
            self._generation = app.consumer_generation_id
            self.tracker.forget()
            return []
        tps = {tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp)}
        self.tracker.forget(tps)
        if not tps:
            return []
        try:
            ends = await asyncio.wait_for(consumer.highwaters(*tps), timeout=app.conf.broker_request_timeout)
        except Exception as exc:  # the broker is slow or away: look again next time
            log.debug("watchdog: end offsets unavailable: %r", exc)
            return []
        now = time.monotonic()
        stalled = [tp for tp in sorted(tps) if ends.get(tp) is not None and self.tracker.observe(
            now, tp, consumer._committed_offset.get(tp), consumer._read_offset.get(tp), int(ends[tp]),
            self._in_flight(tp))]
        done = []
        for tp in stalled:
            if await self._restart(tp, int(ends[tp])):
                done.append(tp)
        return done

    async def _settle(self) -> None:
        # a record of it already taken from the fetcher reaches its queue (and faust's read
        # offset) before the seek, not after it
        await asyncio.sleep(self.settle_s)

    async def _restart(self, tp: Any, end: int) -> bool:
        app, consumer = self.app, self.app.consumer
        generation = app.consumer_generation_id
        committed = consumer._committed_offset.get(tp)
        read = consumer._read_offset.get(tp)
        state = self._state(tp)
        log.warning("event: partition_stalled topic=%s partition=%d committed=%s position=%s end=%d stalled_s=%.1f "
                    "active=%s paused=%s buffered=%s acked_pending=%d generation=%s; seeking it to its committed "
                    "offset", tp.topic, tp.partition, committed, read, end, self.tracker.stall_s, state["active"],
                    state["paused"], state["buffered"], state["acked_pending"], generation,
                    extra={"event": "partition_stalled", "topic": tp.topic, "partition": tp.partition,
                           "committed": committed, "position": read, "end": end, **state})
        consumer.pause_partitions([tp])  # from now on no record of it is delivered
        consumer._buffered_partitions.discard(tp)
        await self._settle()
        if app.consumer_generation_id != generation or not self._steady() or tp not in consumer.assignment():
            log.info("watchdog: a rebalance began; %s[%d] is left to it", tp.topic, tp.partition)
            return False
        committed = consumer._committed_offset.get(tp)
        if committed is None:  # nothing committed in this group: auto_offset_reset=earliest
            committed = int((await consumer.earliest_offsets(tp)).get(tp) or 0)
        try:
            await asyncio.wait_for(consumer.seek_wait({tp: committed}), timeout=app.conf.broker_request_timeout)
        except Exception as exc:
            log.warning("watchdog: seeking %s[%d] to %d failed (%r); trying again after %.1f s",
                        tp.topic, tp.partition, committed, exc, self.tracker.stall_s)
        if app.consumer_generation_id != generation or not self._steady():
            # a rebalance began during the seek: its recovery resumes the partition (it is in
            # the paused set, which faust keeps for a partition assigned again) after its own seek
            log.info("watchdog: a rebalance began; %s[%d] is left to it", tp.topic, tp.partition)
            return False
        # seek_wait leaves faust's read offset unset for offset 0; either way the next record
        # delivered is the one at the committed offset, so no gap is recorded
        consumer.resume_partitions([tp])
        self.tracker.reset(tp)
        self.restarts += 1
        log.info("watchdog: %s[%d] sought to %d and resumed (restart %d)", tp.topic, tp.partition, committed,
                 self.restarts)
        return True
