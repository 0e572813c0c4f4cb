"""The worker loop: poll a batch, score it, produce, confirm delivery, commit. Repeat.

Scoring and sending batch k+1 overlap the broker's acknowledgements of batch k (see ``run_once``).

Ordering is what makes it at-least-once with nothing lost: offsets of a batch are committed
only after every scored event and DLQ record of that batch was acknowledged by the broker.
A crash anywhere before the commit means the batch is read again after restart (consumers
de-duplicate on ``event_id``). SIGTERM / SIGINT set a flag; the current batch is finished,
flushed and committed, the consumer leaves the group, and ``run`` returns.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import orjson

from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.ports import BatchObserver, EventSink, EventSource
from stream_ensemble.serving.codec import dlq_key, dlq_record
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.router import ExperimentRouter
from stream_ensemble.types import BatchResult, DeadLetter, RawMessage, Undelivered

log = logging.getLogger("stream_ensemble.worker")

#: Longest single wait for acknowledgements before the worker checks its stop flag and ticks
#: its liveness probe again (the outage itself is waited out, however long).
OUTAGE_ATTEMPT_S = 5.0


@dataclass
class WorkerStats:
    """Running totals, logged periodically and at shutdown."""

    batches: int = 0
    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    cache_hits: int = 0
    commit_failures: int = 0
    #: Outputs the broker refused for good, re-routed (scored event -> DLQ, DLQ record ->
    #: without its original); shadow scores refused are dropped and counted here too.
    rerouted: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, float]:
        """JSON-ready view with the rate since start."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "batches": self.batches,
            "consumed": self.consumed,
            "scored": self.scored,
            "dead_lettered": self.dead_lettered,
            "cache_hits": self.cache_hits,
            "commit_failures": self.commit_failures,
            "rerouted": self.rerouted,
            "events_per_s": round(self.consumed / elapsed, 1),
        }


@dataclass
class _InFlight:
    """A batch whose outputs were sent; it is committed once they are all acknowledged."""

    seq: int
    messages: list[RawMessage]
    result: BatchResult
    handle_s: float
    started: float
    #: its DLQ records -> (dead letter, original kept), to re-route refusals
    dlq_sent: dict[bytes, tuple[DeadLetter, bool]] = field(default_factory=dict)


class Worker:
    """Wires a source, the scoring service and a sink.

    Parameters
    ----------
    source : EventSource
    sink : EventSink
    service : ScoringService
    cfg : KafkaConfig
        Topics, batch size and timeouts.
    """

    def __init__(self, source: EventSource, sink: EventSink, service: ScoringService | ExperimentRouter, cfg: KafkaConfig,
                 observer: BatchObserver | None = None, shadow_topic: str = "scores.shadow",
                 between_batches: Callable[[], object] | None = None) -> None:
        self.shadow_topic = shadow_topic
        self.observer = observer
        # Called before each poll, in this thread: the only point where hot deploy swaps the
        # service's ensemble, so a batch is scored wholly by one version.
        self.between_batches = between_batches
        self.source = source
        self.sink = sink
        self.service = service
        self.cfg = cfg
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._in_flight: deque[_InFlight] = deque()  # sent, not yet acknowledged and committed; oldest first
        self._seq = 0
        self._failed: KafkaAdapterError | None = None

    def stop(self, *_: object) -> None:
        """Ask the loop to finish the current batch and return."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop gracefully."""
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s received: finishing the current batch", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run_once(self) -> int:
        """Process one batch; returns the number of messages consumed.

        Pipelined: batch k's outputs are sent and left in flight while batch k+1 is polled
        and scored; k+1's outputs are sent as soon as it is scored, and only then are k's
        acknowledgements awaited and k's offsets committed (asynchronously). At most one
        batch stays unacknowledged while the next is polled and scored, and offsets are
        committed in batch order, each only after that batch's acknowledgements. An empty
        poll settles the batch in flight, so an idle worker has nothing unacknowledged or
        uncommitted.
        """
        if self._failed is not None:
            raise RuntimeError("worker stopped after outputs were not acknowledged") from self._failed
        if self.between_batches is not None:
            self.between_batches()
        t0 = time.perf_counter()
        messages = self.source.poll_batch(self.cfg.batch_size, self.cfg.poll_timeout_s)
        if not messages:
            self.settle()
            return 0
        t1 = time.perf_counter()
        result = self.service.handle(messages)
        t2 = time.perf_counter()
        if len(result.scored) + len(result.dead_letters) != len(messages):
            # The engine's invariant; committing now could lose events, so stop instead.
            raise RuntimeError(
                f"batch accounting mismatch: {len(messages)} in, {len(result.scored)} scored, "
                f"{len(result.dead_letters)} dead-lettered"
            )
        self._seq += 1
        batch = _InFlight(self._seq, messages, result, t2 - t1, t0)
        send = self.sink.send
        scores_topic = self.cfg.scores_topic
        for key, value, _ in result.scored:
            send(scores_topic, key, value, batch.seq)
        for key, value, _ in result.shadow:  # shadow arms: acknowledged with the batch, like the rest
            send(self.shadow_topic, key, value, batch.seq)
        for dead in result.dead_letters:
            self._dead_letter(batch, dead)
        t3 = time.perf_counter()
        self._in_flight.append(batch)
        while len(self._in_flight) > 1:  # batch k: its acks arrived while k+1 was scored and sent
            self._settle_oldest(asynchronous=True)
        if log.isEnabledFor(logging.DEBUG):
            ages = [time.time() * 1e3 - m.produce_time_ms for m in messages if m.produce_time_ms is not None]
            log.debug("batch n=%d age_max=%.1fms poll=%.1fms handle=%.1fms send=%.1fms settle=%.1fms", len(messages),
                      max(ages, default=0.0), (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3,
                      (time.perf_counter() - t3) * 1e3)
        return len(messages)

    def settle(self, asynchronous: bool = True) -> None:
        """Wait for every in-flight batch's acknowledgements, then commit their offsets, in order.

        The last batch's commit is synchronous when ``asynchronous`` is false (at shutdown).
        """
        while self._in_flight:
            self._settle_oldest(asynchronous or len(self._in_flight) > 1)

    def _settle_oldest(self, asynchronous: bool) -> None:
        """Wait for the oldest in-flight batch's acknowledgements, then commit its offsets.

        A broker outage is waited out, however long: the outputs stay queued in the producer
        (retriable failures are sent again), the wait is logged once when it starts and once
        when the broker answers again (``event: broker``), the observer keeps ticking (the
        liveness probe stays green) and nothing is committed until every output of the batch
        is acknowledged.

        Raises
        ------
        KafkaAdapterError
            Only when a stop was requested and outputs stayed unacknowledged for
            ``delivery_timeout_s``: nothing of that batch, nor of any later one, is committed
            (they are re-read after restart).
        """
        batch = self._in_flight[0]
        attempt_s = min(self.cfg.delivery_timeout_s, OUTAGE_ATTEMPT_S)
        waiting_since: float | None = None
        backoff = 0.1
        while True:
            try:
                refused = self.sink.flush_and_confirm(attempt_s, batch.seq)
                while refused:  # re-routed outputs are confirmed before the commit, like the rest
                    self._reroute(batch, refused)
                    refused = self.sink.flush_and_confirm(attempt_s, batch.seq)
                break
            except KafkaAdapterError as exc:
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    log.warning("outputs unacknowledged, waiting for the broker (nothing is committed meanwhile): %s", exc,
                                extra={"event": "broker", "state": "down", "reason": str(exc)})
                if self._stop.is_set() and time.monotonic() - waiting_since + attempt_s >= self.cfg.delivery_timeout_s:
                    # A batch polled after this one may be scored and sent: refuse to go on, so
                    # nothing after the unacknowledged batch is committed (all is re-read).
                    self._failed = exc
                    raise
                if self.observer is not None:
                    self.observer.tick()
                time.sleep(backoff)  # each attempt already waited up to attempt_s in the producer
                backoff = min(backoff * 2, 0.5)
        if waiting_since is not None:
            waited = time.monotonic() - waiting_since
            log.info("broker acknowledged the outputs again after %.1f s", waited,
                     extra={"event": "broker", "state": "up", "waited_s": round(waited, 1)})
        self._in_flight.popleft()
        messages, result = batch.messages, batch.result
        try:
            self.source.commit([m.ref for m in messages], asynchronous=asynchronous)
        except KafkaAdapterError as exc:
            # Outputs are already acknowledged; a failed commit (typically a partition
            # revoked by a rebalance mid-batch) only means the new owner re-reads these
            # events: duplicates downstream, never a loss. Not a reason to stop.
            self.stats.commit_failures += 1
            log.warning("offset commit failed, events will be re-delivered: %s", exc)
        if self.observer is not None:
            self.observer.batch(messages, result, batch.handle_s, time.perf_counter() - batch.started)
        s = self.stats
        s.batches += 1
        s.consumed += len(messages)
        s.scored += len(result.scored)
        s.dead_lettered += len(result.dead_letters)
        s.cache_hits += result.cache_hits

    def _dead_letter(self, batch: _InFlight, dead: DeadLetter, keep_original: bool = True) -> None:
        """Log and send one DLQ record of ``batch`` (capped to ``dlq_max_bytes``)."""
        ref = dead.raw.ref
        log.warning("dead-lettered %s[%d]@%d event_id=%s: %s", ref.topic, ref.partition, ref.offset,
                    dead.event_id, dead.reason[:500])
        record = dlq_record(dead, self.cfg.dlq_max_bytes, keep_original)
        batch.dlq_sent[record] = (dead, keep_original)
        self.sink.send(self.cfg.dlq_topic, dlq_key(dead.raw.key), record, batch.seq)

    def _reroute(self, batch: _InFlight, refused: list[Undelivered]) -> None:
        """Outputs refused for good take another way, so one record never stops the worker.

        A scored event becomes a DLQ record of its input (``produce_error``); a DLQ record is
        sent again without its original bytes (size and sha256 kept); a record refused even
        then is sent again after a pause (a broken DLQ topic stalls, it does not lose events).
        A refused shadow score is dropped (its event was scored on the champion).
        """
        messages, result = batch.messages, batch.result
        by_ref = {m.ref: m for m in messages}
        scored = {value: ref for _, value, ref in result.scored}
        moved: set[bytes] = set()
        for out in refused:
            self.stats.rerouted += 1
            log.error("output refused by the broker for %s: %s", out.topic, out.reason,
                      extra={"event": "produce_refused", "topic": out.topic, "reason": out.reason,
                             "size": len(out.value)})
            if out.topic == self.cfg.dlq_topic and out.value in batch.dlq_sent:
                dead, kept = batch.dlq_sent.pop(out.value)
                if kept:
                    self._dead_letter(batch, DeadLetter(dead.raw, f"{dead.reason} (original omitted: DLQ record refused: {out.reason})",
                                                 dead.error_type, dead.event_id), keep_original=False)
                else:
                    time.sleep(1.0)
                    self._dead_letter(batch, dead, keep_original=False)
            elif out.topic == self.cfg.scores_topic and out.value in scored:
                raw = by_ref[scored[out.value]]
                moved.add(out.value)
                dead = DeadLetter(raw, f"scored event refused by the broker: {out.reason}", "produce_error",
                                  orjson.loads(out.value).get("event_id"))
                result.dead_letters.append(dead)
                self._dead_letter(batch, dead)
            # else: a shadow score, dropped (logged above; its event was scored on the champion)
        if moved:
            result.scored = [s for s in result.scored if s[1] not in moved]

    def run(self, max_idle_s: float | None = None, log_every_s: float = 10.0) -> WorkerStats:
        """Loop until stopped (or idle for ``max_idle_s``).

        Returns
        -------
        WorkerStats
        """
        last_log = last_work = time.monotonic()
        while not self._stop.is_set():
            if self.observer is not None:
                self.observer.tick()
            if self.run_once():
                last_work = time.monotonic()
            elif max_idle_s is not None and time.monotonic() - last_work > max_idle_s:
                break
            if time.monotonic() - last_log >= log_every_s:
                log.info("progress %s", self.stats.as_dict(), extra={"stats": self.stats.as_dict()})
                last_log = time.monotonic()
        self.settle(asynchronous=False)  # the last batch: acknowledged and committed before leaving
        log.info("stopped %s", self.stats.as_dict(), extra={"stats": self.stats.as_dict()})
        return self.stats
