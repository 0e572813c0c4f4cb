"""bench throughput's runs on the real broker and Redis: every event accounted for by event_id."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_ensemble.bench.throughput import Bench, ThroughputConfig
from stream_ensemble.bench.throughput_procs import distinct_record
from stream_ensemble.core.data import load_bundled

pytestmark = pytest.mark.integration


def test_distinct_records_are_distinct_real_rows() -> None:
    records = load_bundled().records()[:5]
    made = [distinct_record(records, i) for i in range(15)]
    assert made[:5] == records
    assert len({tuple(sorted(r.items())) for r in made}) == 15
    assert all(abs(made[10][k] - records[0][k]) <= 3e-9 * abs(records[0][k]) for k in records[0])


def test_worker_and_passthrough_runs_count_every_event(servers: dict[str, str], registry: Path, tmp_path: Path) -> None:
    cfg = ThroughputConfig(bootstrap=servers["bootstrap"], redis_url=servers["redis"], registry=registry,
                           large_registry=registry, records=load_bundled().records(), work_dir=tmp_path, partitions=2)
    bench = Bench(cfg)
    scored = bench.run("stream-ensemble", 1, "default", 1000)
    assert (scored.scored, scored.lost, scored.duplicates, scored.dead_lettered) == (1000, 0, 0, 0)
    assert scored.events_per_s > 0 and scored.cpu_us_per_event > 0 and scored.p50_ms <= scored.p99_ms
    passthrough = bench.run("passthrough", 1, "default", 1000, out_bytes=scored.out_bytes_mean)
    assert (passthrough.scored, passthrough.lost, passthrough.duplicates) == (1000, 0, 0)
    # the ceiling's outputs are the size of the real scored events
    assert abs(passthrough.out_bytes_mean - scored.out_bytes_mean) < 0.05 * scored.out_bytes_mean
