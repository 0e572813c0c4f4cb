"""bench deploy's accounting on hand-made score rows: lost, double-scored, mixed batches, swap time, stall."""

from __future__ import annotations

from pathlib import Path

from stream_ensemble.bench.deploy_swap import DeployBenchConfig, _result, goals, render_markdown, summary_line


def test_result_counts_by_event_id_and_batch(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text('{"event":"deploy_refused"}\n')
    t0 = 1000.0
    rows = [("s-0", "d@v1", t0 + 0.1), ("s-1", "d@v1", t0 + 0.1), ("s-2", "d@v2", t0 + 1.5),
            ("s-2", "d@v2", t0 + 1.6), ("s-3", "d@v1", t0 + 1.6), ("s-4", "d@v2", t0 + 3.0), ("warm-0", "d@v1", t0)]
    actions = [{"version": "d@v2", "previous": "d@v1", "action": "deploy", "when": t0 + 1.0},
               {"version": "d@v9", "previous": "d@v2", "action": "deploy", "when": t0 + 2.0}]
    refusals = {"d@v9": {"reason": "cannot load: sha256"}}
    cfg = DeployBenchConfig("b", "r", tmp_path, [], tmp_path, duration_s=4.0)
    r = _result(rows, 6, 100.0, 50.0, actions, refusals, "d@v9", t0, cfg, log, 0)
    assert (r["produced"], r["scored"], r["lost"], r["double_scored"]) == (6, 5, 1, 1)
    assert r["mixed_version_batches"] == 1  # the batch at t0 + 1.6 holds v1 and v2
    assert r["swap_seen_s"] == [0.5]  # the refused version is no swap
    assert r["max_stall_s"] == 1.4 and r["refusal_log_lines"] == 1 and r["broken_served"] == 0
    g = goals(r)
    assert not g["lost_0"] and not g["mixed_0"] and g["swaps_seen_le_2s"] and not g["stall_le_1s"]
    assert g["broken_refused_never_served"]
    assert "| lost_0 | NO |" in render_markdown(r)
    assert summary_line(r).startswith('{"produced":6,"scored":5,"lost":1,"double_scored":1,"mixed_version_batches":1')
