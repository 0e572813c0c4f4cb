"""bench throughput: argument errors are one line with exit 2; the report renders every run."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from stream_ensemble.bench.throughput_report import render_markdown
from stream_ensemble.cli import main


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["bench", "throughput", *args])
    return r.exit_code, r.output


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path) -> None:
    out = str(tmp_path / "t.json")
    for args, needle in ((["--processes", "2,4"], "must include 1"), (["--processes", "1,x"], "comma-separated"),
                         (["--processes", "1,8"], "fewer than the 8"), (["--data", "nope"], "neither a bundled")):
        code, text = _run("--out", out, *args)
        assert code == 2, text
        assert needle in text and "Traceback" not in text


def test_markdown_lists_every_run_and_the_sustained_figures() -> None:
    run = {"worker": "passthrough", "processes": 1, "pool": "default", "events": 10, "events_per_s": 5.0,
           "cpu_us_per_event": 1.0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "lost": 0, "duplicates": 0,
           "out_bytes_mean": 100.0, "rounds_events_per_s": [5.0]}
    result = {"runs": [run, {**run, "worker": "stream-ensemble", "pool": "large"}],
              "sustained": {"offered_per_s": 3, "events_per_s": 3.0, "p50_ms": 7.0, "p95_ms": 8.0, "p99_ms": 9.0,
                            "lost": 0, "duplicates": 0},
              "ratios": {"vs_passthrough": 1.0}, "elapsed_s": 1.0,
              "machine": {"cpus": 2, "cpu_model": "x", "python": "3", "load_before": [1.0], "load_after": [1.0]},
              "config": {"rounds": 1, "events": 10, "naive_events": 1, "large_events": 1, "rows": 5, "partitions": 2}}
    md = render_markdown(result)
    assert "| passthrough x1 |" in md and "| stream-ensemble x1, large pool |" in md
    assert "| stream-ensemble x1 | 3 | 3 | 7 | 8 | 9 | 0 | 0 |" in md
