"""``ab evaluate``'s partition watchdog on the real broker and Redis with a real faust app.

The app (``tests/integration/ab_fault_app.py``: the real app, plus a fault injected once it is
ready and has committed on that partition) is left not reading one outcomes partition in
each of the three ways the README's Outcome join names; half the outcomes are produced before
that, half after, a third of each to that partition.
With the watchdog (``--stall-s 2``) every outcome is joined exactly once and the log names the
partition (``event: partition_stalled``); with it off (``--stall-s 0``) the same fault holds
back exactly that partition's outcomes, which is what the kill -9 test saw in 2 of ~18 runs.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_ab_evaluate import _counts, _outcome, _score, _wait, experiment, stop

pytestmark = pytest.mark.integration
N = 300
HELD = 1  # the outcomes partition the fault stops
APP = Path(__file__).with_name("ab_fault_app.py")


def _produce(bootstrap: str, topic: str, values: list[tuple[int, bytes, bytes]], ts: float) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "compression.type": "lz4"})
    for partition, key, value in values:
        p.produce(topic, key=key, value=value, partition=partition, timestamp=int(ts * 1000))
    assert p.flush(30) == 0


@pytest.mark.parametrize(("fault", "stall_s"), [("buffer_full", 2), ("paused", 2), ("read_ahead", 2),
                                                ("buffer_full", 0)],
                         ids=["buffer_full", "paused", "read_ahead", "buffer_full-watchdog_off"])
def test_watchdog_restarts_a_partition_faust_stopped_reading(servers: dict[str, str], tmp_path: Path,
                                                             fault: str, stall_s: float) -> None:
    t, prefix, app_id, client, cmd = experiment(servers, [sys.executable, str(APP)])
    cmd += ["--stall-s", str(stall_s)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SE_TEST_AB_FAULT": f"{t['outcomes']}:{HELD}:{fault}"}
    rng = random.Random(7)
    t0 = time.time()
    _produce(servers["bootstrap"], t["scores"], [(i % 3, *_score(i, rng)) for i in range(N)], t0)
    _produce(servers["bootstrap"], t["outcomes"], [(i % 3, *_outcome(i)) for i in range(N // 2)], t0 + 1)
    log_path = tmp_path / "eval.log"
    with log_path.open("wb") as log:
        app = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    try:
        _wait(lambda: b"fault injected" in log_path.read_bytes(), 90, "the fault injected")
        # a fetch begun before the fault (faust waits up to 1 s for records) still asks for the
        # partition (ab/recovery.py: a fetch asks for the partitions active when it began)
        time.sleep(2.0)
        # from here on the held partition's records are read only if the watchdog restarts it
        _produce(servers["bootstrap"], t["outcomes"], [(i % 3, *_outcome(i)) for i in range(N // 2, N)], t0 + 1)
        # held back without the watchdog: the second half's outcomes of that partition, and any
        # of the first half it had not fetched when the fault came
        held_after = sum(1 for i in range(N // 2, N) if i % 3 == HELD)
        others = sum(1 for i in range(N) if i % 3 != HELD)
        if stall_s:
            _wait(lambda: _counts(client, prefix, app_id).get("joined", 0) >= N, 90, "every outcome joined")
        else:
            _wait(lambda: _counts(client, prefix, app_id).get("joined", 0) >= others, 90, "the others joined")
            time.sleep(8 * 2.0)  # 8 times what the watchdog would have needed
        time.sleep(2.0)  # anything counted twice would show now
        counts = _counts(client, prefix, app_id)
    finally:
        stop(app)
    text = log_path.read_text(errors="replace")
    stalls = [line for line in text.splitlines() if "event: partition_stalled" in line]
    if stall_s:
        assert counts["joined"] == N, counts
        assert counts.get("outcomes_unknown", 0) == 0
        assert stalls and all(f"topic={t['outcomes']} partition={HELD} " in line for line in stalls), stalls
        assert "watchdog: " in text and "sought to" in text
    else:
        assert others <= counts["joined"] <= N - held_after, counts  # only the held partition's are missing
        assert not stalls
