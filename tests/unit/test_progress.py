"""Progress off a TTY: periodic plain lines with totals, never carriage-return redraws."""

from __future__ import annotations

import io

from stream_ensemble.progress import PlainProgress


def test_plain_progress_prints_periodic_lines_with_totals() -> None:
    out = io.StringIO()
    bar = PlainProgress(total=8, desc="train", unit="step", every_s=0.0, file=out)
    for i in range(8):
        bar.set_postfix_str(f"fitting m{i}")
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 9
    assert lines[-1].startswith("train: 8/8 steps (100%)") and "[fitting m7]" in lines[-1]


def test_plain_progress_is_quiet_between_periods() -> None:
    out = io.StringIO()
    bar = PlainProgress(total=None, desc="collect", unit="event", every_s=3600.0, file=out)
    for _ in range(1000):
        bar.update()
    bar.close()
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]] and "collect: 1000 events" in out.getvalue()
