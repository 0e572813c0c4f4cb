"""Per-member deadlines: each member's calls run on its own daemon thread.

A scikit-learn call cannot be pre-empted, so a deadline can only stop *waiting*: the batch
takes the member's result if it arrives within the deadline and goes on without it
otherwise. The late call keeps running on the member's thread; while it does, the member is
*busy* and later batches skip it at once (no second call piles up behind a hung one, and no
batch waits for it again). One thread per member keeps a member's calls in order and never
runs one estimator from two threads at a time.

The threads are daemons, so a member hung forever never keeps the process from exiting
(``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")


class Late(Exception):
    """A member call did not finish within its deadline (or the member was still busy)."""


class _Lane:
    """One daemon thread running one member's calls in order."""

    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self.current: Future[Any] | None = None
        self.thread = threading.Thread(target=self._loop, name=f"member-{name}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            fn, fut = self.jobs.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # reported to the waiting batch, never lost
                fut.set_exception(exc)


class MemberThreads:
    """A lane (daemon thread) per member name, created on first use.

    Examples
    --------
    >>> threads = MemberThreads()
    >>> threads.call("knn", lambda: 1 + 1, timeout_s=1.0)
    2
    """

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    def busy(self, name: str) -> bool:
        """True while an earlier call of ``name`` is still running (it missed its deadline)."""
        lane = self._lanes.get(name)
        return lane is not None and lane.current is not None and not lane.current.done()

    def call(self, name: str, fn: Callable[[], T], timeout_s: float) -> T:
        """Run ``fn`` on ``name``'s thread and wait for it at most ``timeout_s`` seconds.

        Returns
        -------
        object
            What ``fn`` returned (its exception is re-raised here).

        Raises
        ------
        Late
            ``fn`` is still running after ``timeout_s`` (it goes on in the background and the
            member is :meth:`busy` until it ends), or an earlier call still runs.
        """
        with self._lock:
            lane = self._lanes.get(name)
            if lane is None:
                lane = self._lanes[name] = _Lane(name)
        if self.busy(name):
            raise Late("previous call still running")
        fut: Future[T] = Future()
        lane.current = fut
        lane.jobs.put((fn, fut))
        try:
            return fut.result(timeout=timeout_s)
        except FutureTimeout:
            raise Late(f"no result within {timeout_s:.3f}s") from None

    def running(self) -> list[str]:
        """Names of members with a call still running (for status and tests)."""
        return sorted(n for n in self._lanes if self.busy(n))
