"""``stream-ensemble ab evaluate`` with one input partition made unreadable once it is ready.

Run as ``python tests/integration/ab_fault_app.py ab evaluate ...`` (the CLI's own arguments);
``SE_TEST_AB_FAULT=<topic>:<partition>:<mode>`` names the partition and the way faust is left
not reading it, each the end state of a cause the README's Outcome join names:

* ``buffer_full``: faust's back-pressure path (``Consumer.on_buffer_full``) with no pressure
  drop after it: the partition is out of the fetcher's active set;
* ``paused``: ``Consumer.pause_partitions`` with no resume after it (a recovery that handed
  over to a newer generation);
* ``read_ahead``: faust's read offset far ahead of what it processed (records emptied from a
  queue under it): every record fetched is dropped as already read and the commit cannot move.

The fault is injected once, after the first recovery and the partition's first commit (so the
watchdog has a committed offset to go back to, as after a restart); the line ``fault
injected`` on stdout tells the test when records produced from then on can only be read by
the watchdog.
Test tooling only: the app's code (``stream_ensemble.ab.faust_app``) has no fault hook.
"""

from __future__ import annotations

import os
from typing import Any

import stream_ensemble.ab.faust_app as faust_app
from stream_ensemble.cli import main

_build_app = faust_app.build_app


def build_app(cfg: Any) -> Any:
    """The real app plus a timer that injects ``SE_TEST_AB_FAULT`` once the app is ready."""
    app = _build_app(cfg)
    topic, partition, mode = os.environ["SE_TEST_AB_FAULT"].rsplit(":", 2)
    injected: list[bool] = []

    @app.timer(0.05)  # type: ignore[untyped-decorator]
    async def inject() -> None:
        consumer = app.consumer
        tp = next((tp for tp in consumer.assignment() if (tp.topic, tp.partition) == (topic, int(partition))), None)
        if injected or tp is None or app.in_recovery or not app.tables.recovery.completed.is_set():
            return
        if not consumer._committed_offset.get(tp):
            return
        if mode == "buffer_full":
            consumer.on_buffer_full(tp)
        elif mode == "paused":
            consumer.pause_partitions([tp])
        elif mode == "read_ahead":
            consumer._read_offset[tp] = 10**12
        else:
            raise ValueError(f"unknown fault {mode!r}")
        injected.append(True)
        print(f"fault injected: {mode} on {topic}[{partition}]", flush=True)

    return app


faust_app.build_app = build_app  # run() looks build_app up in its module when it is called

if __name__ == "__main__":
    main()
