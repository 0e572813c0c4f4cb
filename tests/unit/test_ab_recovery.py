"""ab/recovery.py: the join app's recovery end seeks the source partitions before it resumes them.

The proof that no outcome is lost is the kill -9 integration test (tests/integration/
test_ab_evaluate.py, real broker and faust app); this checks the order of the calls and the wiring.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust

from stream_ensemble.ab.recovery import SeekBeforeResumeRecovery, SeekBeforeResumeTableManager


def test_the_app_uses_the_reordered_recovery() -> None:
    app = faust.App("t-recovery-wiring", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False,
                    TableManager=SeekBeforeResumeTableManager)
    assert isinstance(app.tables, SeekBeforeResumeTableManager)
    assert type(app.tables.recovery) is SeekBeforeResumeRecovery


def _recording_recovery(calls: list[str], generation: int) -> Any:
    async def perform_seek() -> None:
        calls.append("seek")

    async def wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    async def send() -> None:
        calls.append("rebalance_complete")

    async def fetcher_start() -> None:
        calls.append("fetcher_start")

    async def earliest_offsets(*tps: str) -> dict[str, int]:
        return dict.fromkeys(tps, 0)

    async def seek_wait(offsets: dict[str, int]) -> None:
        calls.append("seek_start:" + ",".join(f"{tp}@{o}" for tp, o in sorted(offsets.items())))

    consumer = SimpleNamespace(
        assignment=lambda: {"scores:0", "outcomes:0", "join-state-changelog:0"},
        perform_seek=perform_seek, earliest_offsets=earliest_offsets, seek_wait=seek_wait,
        _committed_offset={"scores:0": 7},  # outcomes:0 never committed
        resume_flow=lambda: calls.append("resume_flow"),
        resume_partitions=lambda tps: calls.append("resume:" + ",".join(sorted(tps))),
    )
    app = SimpleNamespace(
        consumer=consumer, consumer_generation_id=generation, conf=SimpleNamespace(broker_request_timeout=1.0, consumer_auto_offset_reset="earliest"),
        on_rebalance_complete=SimpleNamespace(send=send),
        flow_control=SimpleNamespace(resume=lambda: calls.append("flow_control_resume (empties queues)")),
        _fetcher=SimpleNamespace(maybe_start=fetcher_start),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: calls.append("rebalance_end"),
    )
    log = SimpleNamespace(info=lambda *a: None, dev=lambda *a: None, warning=lambda *a: calls.append("warning"))
    tables = SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None)
    rec = SimpleNamespace()
    rec.__dict__.update(app=app, log=log, tables=tables, actives_for_table={}, standbys_for_table={},
                           _set_recovery_ended=lambda: None, _is_changelog_tp=lambda tp: "changelog" in tp,
                           _wait=wait, completed=SimpleNamespace(set=lambda: calls.append("completed")))
    rec._seek_uncommitted = lambda sources: SeekBeforeResumeRecovery._seek_uncommitted(rec, sources)
    return rec


def test_sources_are_sought_while_paused_then_queues_emptied_then_resumed() -> None:
    calls: list[str] = []
    asyncio.run(SeekBeforeResumeRecovery.on_recovery_completed(_recording_recovery(calls, 3), 3))
    assert calls.index("seek") < calls.index("flow_control_resume (empties queues)") < calls.index("resume_flow")
    # the source with no committed offset is sought to its start too, still paused
    assert calls.index("seek") < calls.index("seek_start:outcomes:0@0") < calls.index("flow_control_resume (empties queues)")
    resumed = [c for c in calls if c.startswith("resume:")]
    assert resumed == ["resume:outcomes:0,scores:0"]  # the sources only, never the changelog
    assert calls.index("resume_flow") < calls.index(resumed[0]) < calls.index("fetcher_start")
    assert calls[-1] == "rebalance_end"


def test_a_newer_generation_leaves_the_sources_paused() -> None:
    calls: list[str] = []
    asyncio.run(SeekBeforeResumeRecovery.on_recovery_completed(_recording_recovery(calls, 4), 3))
    assert "seek" not in calls and not [c for c in calls if c.startswith("resume")]


def test_the_fetch_gets_a_copy_of_the_active_partitions_and_nothing_when_empty(monkeypatch: Any) -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from stream_ensemble.ab.recovery import snapshot_fetch_partitions

    seen: list[Any] = []

    async def original(self: Any, consumer: Any, active: Any, timeout: Any = None, max_records: Any = None) -> Any:
        seen.append(active)
        active.discard("changelog:0")  # faust pausing the changelogs while the fetch waits ...
        return {"got": sorted(active)}  # ... must not turn it into "every partition"

    monkeypatch.setattr(AIOKafkaConsumerThread, "_fetch_records", original)
    snapshot_fetch_partitions()
    snapshot_fetch_partitions()  # idempotent: wrapped once
    fetch = AIOKafkaConsumerThread._fetch_records
    live = {"changelog:0"}
    assert asyncio.run(fetch(None, None, live)) == {"got": []}
    assert live == {"changelog:0"} and seen[0] is not live  # aiokafka saw a copy
    assert asyncio.run(fetch(None, None, set())) == {} and len(seen) == 1  # an empty set asks for nothing
