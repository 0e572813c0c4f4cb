"""The confirming Kafka sink: an idempotent producer that tracks delivery per batch.

The worker sends batch k+1's outputs before it waits for batch k's acknowledgements, and
commits batch k's offsets once every output *of batch k* is acknowledged: each ``send`` names
its batch, and :meth:`KafkaSink.flush_and_confirm` waits for one batch (or all of them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from stream_ensemble.adapters.kafka_admin import client_conf
from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.types import Undelivered

log = logging.getLogger("stream_ensemble.kafka")
PRODUCER_LOG = logging.getLogger("librdkafka.producer")

#: Delivery errors about the record itself: sending it again cannot succeed.
PERMANENT_ERRORS = frozenset((
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG, KafkaError.INVALID_MSG_SIZE, KafkaError._INVALID_ARG, KafkaError._BAD_MSG,
))
#: Seconds past ``delivery.timeout.ms`` without a report for a pending message after which the
#: producer counts as wedged (librdkafka reports every message within that timeout; an
#: idempotent producer desynchronised by a long outage was once seen never to report 41).
WEDGED_GRACE_S = 10.0
#: The "error" of a message sent again because its producer was replaced.
_REPLACED = KafkaError(KafkaError._PURGE_QUEUE, "producer replaced")
#: librdkafka's own cap of one produced message (set explicitly: DLQ records are capped below it).
MESSAGE_MAX_BYTES = 1_000_000


class _Delivery:
    """Delivery state of one batch's messages; the instance is their delivery callback.

    ``sent`` keeps every message of the batch (references to bytes the worker holds anyway
    until the batch is committed) so that the batch can be sent again whole when the producer
    is replaced with some of its reports missing.
    """

    __slots__ = ("pending", "refused", "retry", "sent", "last_send")

    def __init__(self) -> None:
        self.pending = 0
        self.refused: list[Undelivered] = []
        self.retry: list[tuple[str, bytes | None, bytes, KafkaError]] = []
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.last_send = time.monotonic()

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        self.pending -= 1
        if err is None:
            return
        if err.code() in PERMANENT_ERRORS:
            self.refused.append(Undelivered(msg.topic() or "", msg.key(), msg.value() or b"", str(err)))
        else:
            self.retry.append((msg.topic() or "", msg.key(), msg.value() or b"", err))


class KafkaSink:
    """Idempotent producer that can confirm every message of a batch was acknowledged.

    A message refused for good (at ``produce()`` time or in its delivery report: too large,
    invalid) is returned by :meth:`flush_and_confirm` of its batch instead of failing it; a
    retriable failure is sent again; a fatal producer error replaces the producer.

    Parameters
    ----------
    cfg : KafkaConfig
    extra : dict, optional
        More librdkafka settings (they win over the defaults).
    """

    def __init__(self, cfg: KafkaConfig, extra: dict[str, Any] | None = None) -> None:
        self._conf = {
            **client_conf(cfg),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": MESSAGE_MAX_BYTES,
            "delivery.timeout.ms": int(cfg.delivery_timeout_s * 1000),
            "reconnect.backoff.max.ms": 1000,  # resume within 1 s of a broker's return
            **(extra or {}),
        }
        self.producer = self._producer()
        self.timeout_s = cfg.delivery_timeout_s
        self._batches: dict[int, _Delivery] = {}
        self.resent = 0
        self.replaced = 0

    def _producer(self) -> Producer:
        try:
            return Producer(self._conf, logger=PRODUCER_LOG)
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot create Kafka producer: {exc}") from exc

    def send(self, topic: str, key: bytes | None, value: bytes, batch: int = 0, record: bool = True) -> None:
        """Queue one message of ``batch`` (waits for queue space instead of dropping).

        A message the client refuses at once (e.g. larger than ``message.max.bytes``) is
        kept for :meth:`flush_and_confirm` of its batch to report; it never raises for one record.
        ``record`` is false for a re-send of a message the batch already holds.
        """
        d = self._batches.get(batch)
        if d is None:
            d = self._batches[batch] = _Delivery()
        if record:
            d.sent.append((topic, key, value))
        d.last_send = time.monotonic()
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=d)
                d.pending += 1
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if err is not None and err.code() not in PERMANENT_ERRORS:
                    d.retry.append((topic, key, value, err))
                else:
                    d.refused.append(Undelivered(topic, key, value, str(err if err is not None else exc)))
                return

    def _wait(self, batches: list[_Delivery], everything: bool, timeout_s: float) -> int:
        """Serve delivery reports until ``batches`` have none pending, the timeout passes or
        the producer looks wedged; returns the producer's queue length (``everything``) or
        the batches' pending count."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if everything:
                queued = int(self.producer.flush(max(min(left, 0.5), 0.0)))
                if queued == 0 or left <= 0 or self._wedged(batches):
                    return queued
                continue
            pending = sum(d.pending for d in batches)
            if pending <= 0 or left <= 0 or self._wedged(batches):
                return pending
            self.producer.poll(min(left, 0.1))

    def _replace_producer(self, reason: str) -> None:
        """Purge the producer and start a new one; every batch stays complete.

        An idempotent producer that hit a fatal error refuses everything after it, and one
        whose sequence numbers went out of step with the broker may never report some
        messages: purge it (its messages come back as retriable reports, to their own
        batches), serve what it still reports, then send each batch with a report missing
        again *whole* on the new producer (which of its messages were written is unknown:
        duplicates, never a loss). Reports the old producer would deliver later go to
        detached objects and count nowhere.
        """
        log.warning("replacing the Kafka producer: %s", reason, extra={"event": "producer_replaced", "reason": reason})
        self.producer.purge()
        self.producer.flush(1.0)
        self.producer = self._producer()
        self.replaced += 1
        for k, old in list(self._batches.items()):
            fresh = self._batches[k] = _Delivery()
            fresh.sent = old.sent
            if old.pending > 0:  # all of it again: a record refused before is refused again
                fresh.retry = [(t, key, v, _REPLACED) for t, key, v in old.sent]
            else:
                # the errors are the old producer's: a fatal one must not replace the new producer too
                fresh.refused, fresh.retry = list(old.refused), [(t, key, v, _REPLACED) for t, key, v, _ in old.retry]

    def _wedged(self, targets: list[_Delivery]) -> bool:
        """True when a pending message waited past the delivery timeout without a report."""
        limit = time.monotonic() - self.timeout_s - WEDGED_GRACE_S
        return any(d.pending > 0 and d.last_send < limit for d in targets)

    def flush_and_confirm(self, timeout_s: float | None = None, batch: int | None = None) -> list[Undelivered]:
        """Wait until every message of ``batch`` (``None``: every queued message) is
        acknowledged or refused for good.

        Returns
        -------
        list of Undelivered
            That batch's messages refused for good (the caller re-routes them); retriable
            failures are sent again (with a short backoff) until ``timeout_s``.

        Raises
        ------
        KafkaAdapterError
            The timeout passed with messages of the batch unacknowledged; the caller must not
            commit that batch's source offsets then.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        if batch is None:
            keys = list(self._batches)
        else:
            keys = [batch] if batch in self._batches else []
        backoff = 0.1
        while True:
            targets = [self._batches[k] for k in keys]  # fresh objects after a replacement
            remaining = self._wait(targets, batch is None, max(deadline - time.monotonic(), 0.0))
            if self._wedged(targets):
                self._replace_producer(f"no delivery report within {self.timeout_s + WEDGED_GRACE_S:.1f} s "
                                       f"of a send (delivery timeout {self.timeout_s:.1f} s)")
                targets = [self._batches[k] for k in keys]
            retrying = [d for d in targets if d.retry]
            if retrying:
                fatal = next((err for d in self._batches.values() for *_, err in d.retry
                              if err.fatal() or err.code() == KafkaError._FATAL), None)
                if fatal is not None:
                    self._replace_producer(f"fatal producer error: {fatal}")
                    targets = [self._batches[k] for k in keys]
                time.sleep(min(backoff, max(deadline - time.monotonic(), 0.0)))
                backoff = min(backoff * 2, 0.5)  # small: the first retry after a broker's return is the one that counts
                for k, d in zip(keys, targets):
                    retry, d.retry = d.retry, []
                    for topic, key, value, _ in retry:
                        self.resent += 1
                        self.send(topic, key, value, k, record=False)
                if time.monotonic() < deadline:
                    continue
            pending = sum(d.pending for d in targets)
            if remaining == 0 and pending <= 0 and not any(d.retry for d in targets):
                break
            if time.monotonic() >= deadline:
                raise KafkaAdapterError(
                    f"{max(remaining, pending) + sum(len(d.retry) for d in targets)} messages unacknowledged "
                    f"after {timeout:.1f}s"
                )
        refused = [u for d in targets for u in d.refused]
        for k in keys:
            del self._batches[k]
        return refused
