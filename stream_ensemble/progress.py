"""Progress on stderr that stays readable off a TTY.

On a terminal: a tqdm bar. Elsewhere (CI logs, ``2> file``, docker logs): one plain line every
``every_s`` seconds and one at the end, ``desc: 12/34 steps (35%), 8.1 s [last message]``,
instead of hundreds of ``\\r`` redraws glued into one line.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class PlainProgress:
    """The subset of tqdm's API the CLI uses, printing periodic plain lines."""

    def __init__(self, total: int | None, desc: str, unit: str, every_s: float = 10.0, file: Any = None) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.every_s = every_s
        self.file = file or sys.stderr
        self.n = 0
        self.postfix = ""
        self._t0 = self._last = time.monotonic()

    def _line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f" [{self.postfix}]" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}s{pct}, {time.monotonic() - self._t0:.1f} s{tail}"

    def update(self, n: int = 1) -> None:
        """Advance; print when ``every_s`` passed since the last line."""
        self.n += n
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            print(self._line(), file=self.file, flush=True)

    def set_postfix_str(self, text: str) -> None:
        """The note shown after the counts."""
        self.postfix = text

    def set_description(self, desc: str) -> None:
        """Rename the step."""
        self.desc = desc

    def refresh(self) -> None:
        """Nothing to redraw off a TTY."""

    def write(self, text: str, file: Any = None) -> None:
        """Print a line (tqdm.write's role)."""
        print(text, file=file or self.file, flush=True)

    def close(self) -> None:
        """The final line with the totals."""
        print(self._line(), file=self.file, flush=True)


def progress(total: int | None, desc: str, unit: str = "step", disable: bool = False) -> Any:
    """A tqdm bar on a TTY, else a :class:`PlainProgress` (both: update, set_postfix_str, close)."""
    if sys.stderr.isatty() or disable:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=disable)
    return PlainProgress(total, desc, unit)
