"""ab/watchdog.py: when an input partition counts as stalled, and the order of its restart.

The proof that the watchdog restarts a partition faust stopped reading is the integration test
(tests/integration/test_ab_watchdog.py, real broker and faust app); this checks the decision
rules and the calls against a stand-in consumer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest

from stream_ensemble.ab.watchdog import PartitionWatchdog, StallTracker


class TP(NamedTuple):
    topic: str
    partition: int


OUT1 = TP("outcomes", 1)


def test_a_partition_is_stalled_only_after_stall_s_without_progress() -> None:
    tr = StallTracker(5.0)
    assert not tr.observe(0.0, OUT1, 10, 9, 20, False)  # first look starts the clock
    assert not tr.observe(4.9, OUT1, 10, 9, 20, False)
    assert tr.observe(5.0, OUT1, 10, 9, 20, False)


@pytest.mark.parametrize("later", [
    (11, 9, 20, False),  # the commit moved
    (10, 12, 20, False),  # faust read further (the commit may follow a hole later)
    (10, 9, 20, True),  # a record of it waits in a queue or is being processed: a slow agent
    (20, 9, 20, False),  # caught up
])
def test_progress_work_in_flight_or_no_lag_restart_the_clock(later: tuple[int, int, int, bool]) -> None:
    tr = StallTracker(5.0)
    tr.observe(0.0, OUT1, 10, 9, 20, False)
    assert not tr.observe(4.0, OUT1, *later)
    assert not tr.observe(8.0, OUT1, *later)  # 4 s after the reset, not 8 s after the first look


def test_nothing_committed_counts_from_offset_0_and_forget_clears() -> None:
    tr = StallTracker(1.0)
    tr.observe(0.0, OUT1, None, None, 3, False)
    assert tr.observe(1.0, OUT1, None, None, 3, False)
    tr.forget()
    assert not tr.observe(2.0, OUT1, None, None, 3, False)
    assert not StallTracker(1.0).observe(9.0, OUT1, None, None, 0, False)  # empty partition


def _app(calls: list[str], committed: int | None = 50, read: int | None = 49, end: int = 100,
         generation_changes_during_settle: bool = False, active: bool = False, fetch_position: int | None = 50,
         fetch_buffered: dict[Any, Any] | None = None) -> Any:
    fetch_buffered = fetch_buffered or {}
    changelog = TP("app-join-state-changelog", 1)

    async def highwaters(*tps: Any) -> dict[Any, int]:
        return {tp: end for tp in tps}

    async def seek_wait(offsets: dict[Any, int]) -> None:
        calls.append(f"seek:{offsets[OUT1]}")

    async def earliest_offsets(*tps: Any) -> dict[Any, int]:
        return {tp: 7 for tp in tps}

    async def call_thread(fn: Any, *args: Any) -> Any:
        return fn(*args)

    states = {OUT1: SimpleNamespace(position=fetch_position, has_valid_position=fetch_position is not None)}
    aio = SimpleNamespace(_subscription=SimpleNamespace(subscription=SimpleNamespace(
        assignment=SimpleNamespace(state_value=states.get))), _fetcher=SimpleNamespace(_records=fetch_buffered))
    consumer = SimpleNamespace(
        _thread=SimpleNamespace(call_thread=call_thread, _ensure_consumer=lambda: aio),
        assignment=lambda: {OUT1, changelog}, _is_changelog_tp=lambda tp: "changelog" in tp.topic,
        highwaters=highwaters, seek_wait=seek_wait, earliest_offsets=earliest_offsets,
        _committed_offset=defaultdict(lambda: None, {OUT1: committed}), _read_offset={OUT1: read},
        _unacked_messages=set(), _buffered_partitions={OUT1}, _paused_partitions=set(), _acked={},
        _get_active_partitions=lambda: {OUT1} if active else set(), flow_active=True,
        pause_partitions=lambda tps: calls.append("pause:" + ",".join(f"{t.topic}[{t.partition}]" for t in tps)),
        resume_partitions=lambda tps: calls.append("resume:" + ",".join(f"{t.topic}[{t.partition}]" for t in tps)),
    )
    return SimpleNamespace(consumer=consumer, in_recovery=False, consumer_generation_id=3,
                           flow_control=SimpleNamespace(is_active=lambda: True), conf=SimpleNamespace(broker_request_timeout=1.0),
                           topics=SimpleNamespace(_tp_index={}), _change=generation_changes_during_settle)


def test_records_in_the_consumer_wait_until_the_backstop() -> None:
    tr = StallTracker(5.0)  # backstop 30 s
    tr.observe(0.0, OUT1, 10, 9, 20, False, True)
    assert not tr.observe(20.0, OUT1, 10, 9, 20, False, True)  # fetched, behind other partitions
    assert tr.observe(30.0, OUT1, 10, 9, 20, False, True)  # ... for 30 s without progress: restart anyway
    tr.reset(OUT1)
    tr.observe(0.0, OUT1, 10, 9, 20, False, True)
    assert not tr.observe(4.0, OUT1, 10, 9, 20, False, False)  # the fetched records went nowhere
    assert tr.observe(9.0, OUT1, 10, 9, 20, False, False)  # 5 s idle after the last sign of them


class _Watchdog(PartitionWatchdog):
    """No real sleep; optionally a rebalance (a new generation) while the partition settles."""

    async def _settle(self) -> None:
        if self.app._change:
            self.app.consumer_generation_id += 1


async def _run(app: Any, looks: int) -> list[list[Any]]:
    wd = _Watchdog(app, stall_s=0.0, settle_s=0.0)
    wd.tracker.backstop_s = 1e9  # no backstop here (its rule: test_records_in_the_consumer_wait_until_the_backstop)
    return [await wd.check() for _ in range(looks)]


def test_a_stalled_partition_is_paused_sought_to_its_commit_and_resumed(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    # look 1 sets the generation, look 2 starts the clock, look 3 (stall_s = 0) restarts
    assert asyncio.run(_run(_app(calls), 3)) == [[], [], [OUT1]]
    assert calls == ["pause:outcomes[1]", "seek:50", "resume:outcomes[1]"]  # never the changelog
    line = next(r for r in caplog.records if "partition_stalled" in r.getMessage())
    assert getattr(line, "event") == "partition_stalled" and (getattr(line, "topic"), getattr(line, "partition")) == ("outcomes", 1)
    assert "committed=50 position=49 end=100" in line.getMessage() and getattr(line, "buffered") is True


def test_nothing_committed_seeks_to_the_earliest_offset() -> None:
    calls: list[str] = []
    asyncio.run(_run(_app(calls, committed=None, read=None), 3))
    assert calls == ["pause:outcomes[1]", "seek:7", "resume:outcomes[1]"]


def test_a_rebalance_during_the_restart_leaves_the_partition_to_it() -> None:
    calls: list[str] = []
    assert asyncio.run(_run(_app(calls, generation_changes_during_settle=True), 3)) == [[], [], []]
    assert calls == ["pause:outcomes[1]"]  # no seek, no resume: the new generation's recovery resumes it


def test_a_caught_up_or_busy_consumer_is_left_alone() -> None:
    calls: list[str] = []
    assert asyncio.run(_run(_app(calls, committed=100, read=99), 4)) == [[], [], [], []]
    app = _app(calls)
    app.in_recovery = True
    assert asyncio.run(_run(app, 4)) == [[], [], [], []]
    assert calls == []


@pytest.mark.parametrize(("fetch_position", "buffered", "restarted"), [
    (50, False, True),  # active, nothing fetched or on its way: stalled (e.g. faust drops what it reads)
    (50, True, False),  # aiokafka holds records of it: they will be delivered
    (60, False, False),  # aiokafka returned records faust has not delivered yet (read offset 49)
])
def test_an_active_partition_with_records_on_their_way_is_not_restarted(fetch_position: int, buffered: bool,
                                                                         restarted: bool) -> None:
    calls: list[str] = []
    app = _app(calls, active=True, fetch_position=fetch_position, fetch_buffered={OUT1: object()} if buffered else {})
    assert asyncio.run(_run(app, 3))[-1] == ([OUT1] if restarted else [])
