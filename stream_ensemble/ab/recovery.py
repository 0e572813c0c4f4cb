"""faust's end of table recovery, reordered so a restart does not skip source offsets.

After a rebalance faust pauses every assigned partition, reads the changelog with the flow
running, and then (``Recovery.on_recovery_completed`` in faust-streaming 0.15.3) does:
resume the source partitions, seek them to their committed offsets, resume the flow control
(which empties the agents' queues). With the fetcher running, records of the source partitions
arrive between the resume and the end of the seek. Measured on ``ab evaluate`` after a kill -9
(faust's consumer instrumented, ``README.md``, Outcome join):

1. a batch fetched before the seek is still being delivered when the seek resets the consumer's
   read offset to the committed one, so its next record looks like a jump and faust records
   the offsets in between as a committable gap;
2. the flow-control resume right after the seek empties the agents' queues, which still hold
   records of that batch: they are never processed;
3. aiokafka re-fetches from the committed offset, and faust drops those copies as already read.

The records of step 2 are lost, and the gap of step 1 lets the commit move past them. Here the
seek runs while the source partitions are still paused (aiokafka discards what it had buffered
for a partition it seeks; the sources with no committed offset, which faust's seek leaves
alone, are sought to their start: ``SeekBeforeResumeRecovery._seek_uncommitted``), the queues
are emptied, and only then are the sources resumed: the
first record an agent sees on each partition is the one at its committed offset.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables import TableManager
from faust.tables.recovery import Recovery


class SeekBeforeResumeRecovery(Recovery):
    """faust's ``Recovery`` whose recovery end seeks the source partitions before resuming them."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Finish recovery: tables told, sources sought while paused, queues emptied, sources resumed.

        Parameters
        ----------
        generation_id : int
            The consumer group generation this recovery belongs to; a newer one (another
            rebalance started) leaves the sources paused for that rebalance's recovery.
        """
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                              self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
            return
        sources = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        if assignment:
            # the sources are still paused here (faust paused every assigned partition and
            # recovery resumed only changelogs): nothing of theirs is delivered before the seek
            self.log.info("Seek stream partitions to committed offsets (sources still paused).")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
            await self._wait(self._seek_uncommitted(sources), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        app.flow_control.resume()  # empties the agents' queues: nothing of the sources is in them
        consumer.resume_flow()
        self.log.dev("Resume stream partitions")
        consumer.resume_partitions(sources)
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


    async def _seek_uncommitted(self, sources: set[Any]) -> None:
        """Seek the sources with no committed offset to where ``auto_offset_reset`` starts them.

        ``perform_seek`` (aiokafka's ``seek_to_committed``) leaves a partition with no committed
        offset (or 0) where the fetcher has it, and the fetcher may have moved it past records
        faust never delivered: when the changelog restore ends, faust removes the changelogs
        from its active set, which is then empty (the sources are paused), and a fetch waiting
        on that same set object in the consumer's thread reads an empty set as "every
        partition" and returns records of the sources, which faust drops as not active
        (:func:`snapshot_fetch_partitions` closes that; this seek stays as a second guard). Seen
        after a kill -9 before the first run had committed ``joinable``: the restarted app's
        first record there was at 616, the records before it never joined, and nothing
        recorded a gap (README, Outcome join).
        """
        app: Any = self.app
        consumer = app.consumer
        fresh = {tp for tp in sources if not consumer._committed_offset.get(tp)}
        if not fresh:
            return
        if app.conf.consumer_auto_offset_reset == "latest":
            starts = await consumer.highwaters(*fresh)
        else:
            starts = await consumer.earliest_offsets(*fresh)
        self.log.info(f"Seek sources with no committed offset to their start: {sorted(fresh)}")
        await consumer.seek_wait({tp: int(starts[tp] or 0) for tp in fresh})


def snapshot_fetch_partitions() -> None:
    """Make faust's fetch ask aiokafka for a copy of its active partitions, and for none when empty.

    faust 0.15.3 hands its live active-partition set to aiokafka's ``fetched_records`` in the
    consumer's thread, which re-reads it while it waits, and reads an *empty* set as "every
    partition". When the changelog restore ends, faust takes the changelogs out of that set
    while the sources are still paused: the set is empty, a waiting fetch returns records of the
    sources, faust drops them as not active, and aiokafka's position has moved past them. A
    partition sought afterwards (a committed one, by the recovery) is put back; any other is
    not: measured after a kill -9, the restarted app's first ``joinable`` record at the
    partition's end (no committed offset), or outcomes and ``joinable`` partitions whose
    position was at the end while faust had delivered nothing since the seek (the watchdog's
    backstop restarted them 30 s later). With a copy, a fetch returns only partitions that
    were active when it started. Idempotent; patches the class (every app in the process).
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._fetch_records
    if getattr(original, "snapshot", False):
        return

    async def _fetch_records(self: Any, consumer: Any, active_partitions: Any, timeout: Any = None,
                             max_records: Any = None) -> Any:
        if active_partitions is not None:
            active_partitions = set(active_partitions)  # one C-level copy: atomic under the GIL
            if not active_partitions:
                return {}
        return await original(self, consumer, active_partitions, timeout=timeout, max_records=max_records)

    _fetch_records.snapshot = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]


class SeekBeforeResumeTableManager(TableManager):
    """faust's ``TableManager`` with :class:`SeekBeforeResumeRecovery` (``faust.App(TableManager=...)``)."""

    @property
    def recovery(self) -> Recovery:
        """The recovery service of this table manager, created on first use."""
        if self._recovery is None:
            self._recovery = SeekBeforeResumeRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
