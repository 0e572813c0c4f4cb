"""A watchdog for input partitions the faust app has stopped reading (``ab evaluate``).

Why: the kill -9 test's failures were an emptied active-partition set that a waiting fetch
read as "every partition" (fixed in ``recovery.snapshot_fetch_partitions``, README Outcome
join): records were dropped and a partition could be left unread with its commit kept. That
is the one cause measured; reading faust-streaming 0.15.3 shows other ways to leave a
partition unread, none of them reproduced in a real run:

* ``Consumer.on_buffer_full`` takes it out of the fetcher's active set and only the queue's
  pressure-drop callback puts it back; the flow-control resume clears the queue (``clear``)
  but not the pending callbacks, and with no later record of any partition the callback
  never runs;
* it is left out of the active set (``pause_partitions``) by a rebalance whose recovery
  handed over to a newer generation;
* faust's read offset for it is ahead of records it never processed (a queue emptied under
  it), so the re-fetched copies are dropped as already read and the acks have a hole at
  their head that the commit cannot pass.

So this does not bet on one cause. Each look it asks the broker for the end offset of each
assigned input partition (the changelogs are faust's recovery's business) and calls a
partition *stalled* when it has records past its committed offset, its committed offset and
faust's read offset stand still, nothing of it is in an agent's queue or being processed,
and either for ``stall_s`` the consumer had nothing of it fetched or on its way to the agents
(for a partition out of faust's active set, whatever aiokafka holds counts as nothing: faust
asks for none of it), or for ``backstop_s`` it had. The conditions on records in flight tell
a stopped partition from a busy app: right after a restart the outcomes partitions wait
behind the scores backlog for ~10 s with nothing of theirs delivered, and a first version
without the fetcher conditions restarted them there (harmless, but not a stall).

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
``_paused_partitions``, the conductor's ``_tp_index`` with its channels' queues; and aiokafka
0.14's subscription state and fetched-records map, read in the consumer's thread.
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
    progress_since: float  # last time an offset moved, it caught up, or a record of it was in an agent
    idle_since: float  # ... or the consumer had records of it fetched and not yet delivered


class StallTracker:
    """Which partitions are stalled, from successive observations (no faust, no I/O).

    Parameters
    ----------
    stall_s : float
        Seconds a partition must lag with no progress and nothing of it anywhere in the app
        (fetched, being delivered, queued, processed) to be stalled.
    backstop_s : float, optional
        Seconds a partition may lag with no progress while the consumer says it has records of
        it fetched or being delivered (a slow fetcher, or one stuck); default ``6 * stall_s``.
    """

    def __init__(self, stall_s: float, backstop_s: float | None = None) -> None:
        self.stall_s = stall_s
        self.backstop_s = 6 * stall_s if backstop_s is None else backstop_s
        self._marks: dict[Any, _Mark] = {}

    def observe(self, now: float, tp: Any, committed: int | None, read: int | None, end: int,
                in_agent: bool, fetching: bool = False) -> bool:
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
        in_agent : bool
            Whether a record of it is in an agent's queue or being processed: never stalled then.
        fetching : bool
            Whether the consumer holds records of it fetched and not yet delivered to the agents.

        Returns
        -------
        bool
            True when it has lagged with neither offset moving for ``stall_s`` with nothing of it
            anywhere, or for ``backstop_s`` with records of it only in the consumer.
        """
        lag = end - (committed or 0)
        mark = self._marks.get(tp)
        if lag <= 0 or in_agent or mark is None or (mark.committed, mark.read) != (committed, read):
            # caught up, busy, or moving: both clocks (re)start here
            self._marks[tp] = _Mark(committed, read, now, now)
            return False
        if fetching:
            # records of it are on their way (e.g. behind another partition's backlog after a
            # restart): not stalled yet, unless that lasts past the backstop
            mark.idle_since = now
            return now - mark.progress_since >= self.backstop_s
        return now - mark.idle_since >= self.stall_s or now - mark.progress_since >= self.backstop_s

    def reset(self, tp: Any) -> None:
        """Start ``tp``'s clock again (after it was restarted)."""
        self._marks.pop(tp, None)

    def forget(self, keep: Iterable[Any] = ()) -> None:
        """Drop every partition not in ``keep`` (all of them by default)."""
        keep = set(keep)
        for tp in [tp for tp in self._marks if tp not in keep]:
            del self._marks[tp]


def _fetcher_state(aio: Any, tps: set[Any]) -> dict[Any, tuple[int | None, bool]]:
    """{tp: (aiokafka's position or None, whether it holds fetched records of tp)}."""
    subscription = aio._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    records = aio._fetcher._records
    out: dict[Any, tuple[int | None, bool]] = {}
    for tp in tps:
        state = assignment.state_value(tp) if assignment is not None else None
        position = state.position if state is not None and state.has_valid_position else None
        out[tp] = (position, tp in records)
    return out


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

    def _in_agent(self, tp: Any) -> bool:
        consumer = self.app.consumer
        if any(m.tp == tp for m in list(consumer._unacked_messages)):
            return True
        for channel in self.app.topics._tp_index.get(tp, ()):
            queue = getattr(channel, "queue", None)
            if queue is not None and any(getattr(getattr(ev, "message", None), "tp", None) == tp
                                         for ev in list(queue._queue)):
                return True
        return False

    async def _fetcher(self, tps: set[Any]) -> dict[Any, tuple[int | None, bool]]:
        # aiokafka's position and buffered records, read in the consumer's own thread
        thread = self.app.consumer._thread
        return dict(await thread.call_thread(_fetcher_state, thread._ensure_consumer(), tps))

    def _fetching(self, tp: Any, fetcher: tuple[int | None, bool]) -> bool:
        # Records of an active partition that aiokafka holds, or has returned and faust has not
        # delivered yet (its position past faust's read offset), will reach the agents. Not
        # for a partition out of faust's active set: it is asked for none of them.
        consumer = self.app.consumer
        if tp not in consumer._get_active_partitions():
            return False
        position, buffered = fetcher
        read, committed = consumer._read_offset.get(tp), consumer._committed_offset.get(tp)
        delivered_to = read + 1 if read is not None else (committed or 0)
        return buffered or (position is not None and position > delivered_to)

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
        try:
            fetcher = await asyncio.wait_for(self._fetcher(tps), timeout=app.conf.broker_request_timeout)
        except Exception as exc:
            log.debug("watchdog: consumer state unavailable: %r", exc)
            return []
        now = time.monotonic()
        stalled = [tp for tp in sorted(tps) if ends.get(tp) is not None and self.tracker.observe(
            now, tp, consumer._committed_offset.get(tp), consumer._read_offset.get(tp), int(ends[tp]),
            self._in_agent(tp), self._fetching(tp, fetcher.get(tp, (None, False))))]
        done = []
        for tp in stalled:
            if await self._restart(tp, int(ends[tp]), fetcher.get(tp, (None, False))):
                done.append(tp)
        return done

    async def _settle(self) -> None:
        # a record of it already taken from the fetcher reaches its queue (and faust's read
        # offset) before the seek, not after it
        await asyncio.sleep(self.settle_s)

    async def _restart(self, tp: Any, end: int, fetcher: tuple[int | None, bool]) -> bool:
        app, consumer = self.app, self.app.consumer
        generation = app.consumer_generation_id
        committed = consumer._committed_offset.get(tp)
        read = consumer._read_offset.get(tp)
        state = self._state(tp)
        state.update(fetch_position=fetcher[0], fetch_buffered=fetcher[1])
        log.warning("event: partition_stalled topic=%s partition=%d committed=%s position=%s end=%d stall_s=%.1f "
                    "active=%s paused=%s buffered=%s acked_pending=%d fetch_position=%s fetch_buffered=%s "
                    "generation=%s; seeking it to its committed offset", tp.topic, tp.partition, committed, read, end,
                    self.tracker.stall_s, state["active"], state["paused"], state["buffered"], state["acked_pending"],
                    fetcher[0], fetcher[1], generation,
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
