"""The scoring engine: a batch of raw messages in, encoded scored events and DLQ records out.

No I/O of its own: it talks to the cache and health store through the Protocols in
:mod:`stream_ensemble.ports`, so it is unit-testable with fakes and benchmarkable alone.

Every message of a batch ends in exactly one of two places: ``BatchResult.scored`` or
``BatchResult.dead_letters`` (with the reason). That invariant is what the worker's
"nothing lost" guarantee rests on, and the tests check it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import orjson

from stream_ensemble.config import EXPLAIN_LEVELS
from stream_ensemble.core.members.guard import MemberGuard
from stream_ensemble.ports import HealthStore, PredictionCache
from stream_ensemble.serving.body_bytes import encode_bodies
from stream_ensemble.serving.codec import DecodeError, decode_event, schema_version_for
from stream_ensemble.serving.degraded import DEGRADED_REASONS, HEALTH_UNKNOWN, PRIOR_ONLY
from stream_ensemble.serving.ensemble import ScoreBatch, ServingEnsemble
from stream_ensemble.types import BatchResult, DeadLetter, Event, RawMessage

log = logging.getLogger("stream_ensemble.serving.engine")

#: Called with (messages, exception) when scoring a whole batch raised; return True to
#: dead-letter those events (the default), False to re-raise (the worker then stops
#: without committing, so the batch is re-read after restart).
ErrorPolicy = Callable[[Sequence[RawMessage], BaseException], bool]


def dead_letter_policy(messages: Sequence[RawMessage], exc: BaseException) -> bool:
    """Default policy: log with positions and dead-letter the events."""
    first = messages[0].ref if messages else None
    log.error("scoring failed for %d events (first %s): %r", len(messages), first, exc)
    return True


class ScoringService:
    """Turns raw messages into scored events with one :class:`ServingEnsemble`.

    Parameters
    ----------
    ensemble : ServingEnsemble
    health : HealthStore
    cache : PredictionCache or None
        ``None`` or ``cache_ttl_s == 0`` disables caching.
    cache_ttl_s : int
    explain : str
        Default explanation level (an event's ``explain`` field overrides it).
    key_prefix : str
        Redis key prefix (see README, "Redis keys").
    arm : str
        A/B arm label written into scored events.
    on_error : ErrorPolicy
    clock : callable returning seconds since the epoch
    guard : MemberGuard, optional
        Per-member deadline and circuit breakers (None: members run inline, none skipped).
    fallback : {"prior", "dlq"}
        An event no member could score gets the class prior at confidence 0 (flagged
        ``degraded_reason: prior_only``) or goes to the DLQ (``error_type: no_member``).
    max_explain : str
        Highest level an event's ``explain`` field may ask for (``full`` costs ~8x
        ``summary``); a higher request gets this level, or ``explain`` when that is higher.
    min_known_share : float
        Least share of the encoder's features an event must give, present and non-null;
        below it the event is dead-lettered (``too_few_features``).
    """

    def __init__(
        self,
        ensemble: ServingEnsemble,
        health: HealthStore,
        cache: PredictionCache | None = None,
        cache_ttl_s: int = 3600,
        explain: str = "summary",
        key_prefix: str = "se",
        arm: str = "champion",
        on_error: ErrorPolicy = dead_letter_policy,
        clock: Callable[[], float] = time.time,
        guard: MemberGuard | None = None,
        fallback: str = "prior",
        max_explain: str = "summary",
        min_known_share: float = 0.5,
    ) -> None:
        self.max_explain = max_explain
        self.min_known_share = min_known_share
        self.guard = guard
        self.fallback = fallback
        self.ensemble = ensemble
        self.health = health
        self.cache = cache if cache_ttl_s > 0 else None
        self.cache_ttl_s = cache_ttl_s
        self.explain = explain
        self.key_prefix = key_prefix
        self.arm = arm
        #: Experiment id written into scored events beside ``arm`` (None: no field, as before).
        self.experiment: str | None = None
        self.on_error = on_error
        self.clock = clock
        self.seen_features: Iterable[str] = ()

    # ------------------------------------------------------------------ API
    def handle(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Score a batch.

        Parameters
        ----------
        messages : sequence of RawMessage

        Returns
        -------
        BatchResult
            ``scored`` (key, value, ref) in input order for valid events, and dead letters.
        """
        t0 = time.perf_counter()
        result = BatchResult()
        events: list[tuple[RawMessage, Event]] = []
        for msg in messages:
            try:
                events.append((msg, decode_event(msg.value)))
            except DecodeError as exc:
                result.dead_letters.append(DeadLetter(msg, exc.reason, exc.kind, exc.event_id))
        if not events:
            return result
        self.seen_features = events[0][1].features.keys()  # for hot deploy's schema check
        healthy = self.ensemble.health_vector(self.health.down())
        selection = self.ensemble.strategy.selection_id(healthy)
        result.selection_id = selection
        levels = self._levels(events)
        n = len(events)
        # Every row is encoded first: the encoded rows key the cache and the de-duplication.
        encoded = self.ensemble.encoder.transform_records([ev.features for _, ev in events], self.min_known_share)
        ok = encoded.ok
        refused = {i: (reason, encoded.kinds.get(i, "feature_type")) for i, reason in encoded.errors.items()}
        width = encoded.key_rows.shape[1] * 8
        flat = encoded.key_rows.tobytes()
        ok_pos = np.flatnonzero(ok).tolist()
        row_key: dict[int, bytes] = {i: flat[i * width:(i + 1) * width] for i in ok_pos}
        # With the cache off there are no digests, no lookups and no per-event cache encoding.
        keys: dict[int, str] = {}
        cached: list[bytes | None] = [None] * n
        if self.cache is not None:
            stem = f"{self.key_prefix}:cache:{self.ensemble.tag}:{selection}:"
            blake2b = hashlib.blake2b
            keys = {i: f"{stem}{levels[i]}:{blake2b(row_key[i], digest_size=16).hexdigest()}" for i in ok_pos}
            for i, hit in zip(ok_pos, self.cache.get_many(list(keys.values()))):
                cached[i] = hit
        miss = [i for i in ok_pos if cached[i] is None]
        result.cache_hits = len(ok_pos) - len(miss)
        result.cache_misses = len(miss) + len(refused)
        # Identical rows in one batch (same encoded row and level) are scored once.
        first_of: list[int] = list(range(n))
        seen: dict[tuple[bytes, str], int] = {}
        for i in miss:
            first_of[i] = seen.setdefault((row_key[i], levels[i]), i)
        unique = list(seen.values())
        fresh: dict[int, bytes] = {}
        rejected: dict[int, tuple[str, str]] = {}
        degraded: dict[int, str] = {}
        if unique:
            # numpy warnings (a huge value overflowing in standardisation...) would reach stderr
            # once per code location and say nothing: the pool finds and drops the rows they spoil.
            x_row = np.cumsum(ok) - 1  # batch position -> row of encoded.X
            rows = x_row[unique]
            with np.errstate(all="ignore"):
                fresh, rejected, degraded = self._score_misses(
                    encoded.X[rows], encoded.imputed[unique], [levels[i] for i in unique], healthy, unique,
                    [events[i][0] for i in unique])
        latency_ms = (time.perf_counter() - t0) * 1000.0
        # A scored event is its per-event head, the cached-form body's members, a batch tail:
        # the body is encoded once and the same bytes go to the cache and into the event.
        head_rest = orjson.dumps({"scored_at": self.clock(), "ensemble_version": self.ensemble.tag})[1:-1]
        tail = b',"latency_ms":' + orjson.dumps(round(latency_ms, 3)) + b',"arm":' + orjson.dumps(self.arm)
        if self.experiment is not None:
            tail += b',"experiment":' + orjson.dumps(self.experiment)
        tail += b"}"
        to_cache: list[tuple[str, bytes]] = []
        scored = result.scored
        version = schema_version_for(len(self.ensemble.class_names))
        for i, (msg, ev) in enumerate(events):
            hit = cached[i]
            if hit is not None:
                # Same bytes as decoding, setting both cache_hit flags and re-encoding.
                body = hit.replace(b'"cache_hit":false', b'"cache_hit":true')
                if b'"degraded":' not in body:  # cached by a worker before the flag existed
                    body = body.replace(b',"cache_hit":true', b',"degraded":false,"degraded_reason":null,"cache_hit":true', 1)
            elif i in refused:
                reason, kind = refused[i]
                result.dead_letters.append(DeadLetter(msg, reason, kind, ev.event_id))
                continue
            else:
                first = first_of[i]
                if first in rejected:
                    reason, kind = rejected[first]
                    result.dead_letters.append(DeadLetter(msg, reason, kind, ev.event_id))
                    continue
                body = fresh[first]
                why = degraded.get(first)
                if why is not None:  # never cached: a later event must get the healthy selection's score
                    result.degraded[why] = result.degraded.get(why, 0) + 1
                elif keys and first == i:
                    to_cache.append((keys[i], body))
            head = orjson.dumps({"schema_version": version, "event_id": ev.event_id,
                                 "entity_id": ev.entity_id, "timestamp": ev.timestamp})
            scored.append((ev.entity_id.encode(), b"".join((head[:-1], b",", head_rest, b",", body[1:-1], tail)), msg.ref))
        if self.cache is not None and to_cache:
            self.cache.set_many(to_cache, self.cache_ttl_s)
        return result

    # ------------------------------------------------------------- helpers
    def _levels(self, events: list[tuple[RawMessage, Event]]) -> list[str]:
        """Explanation level per event: its own request, capped by ``max_explain``."""
        order = EXPLAIN_LEVELS.index
        cap = max(order(self.max_explain), order(self.explain))
        return [self.explain if ev.explain is None else EXPLAIN_LEVELS[min(order(ev.explain), cap)] for _, ev in events]

    def _score_misses(
        self,
        X: np.ndarray,
        imputed: np.ndarray,
        levels: list[str],
        healthy: np.ndarray,
        positions: list[int],
        raws: list[RawMessage],
    ) -> tuple[dict[int, bytes], dict[int, tuple[str, str]], dict[int, str]]:
        """Score the encoded rows that missed the cache.

        Parameters
        ----------
        X : ndarray of shape (k, n_outputs)
            Encoded rows, one per batch position of ``positions``.
        imputed : ndarray of shape (k,), int
        levels : list of str, length k
        healthy : ndarray of shape (n_models,), bool
        positions : list of int, length k
        raws : list of RawMessage, length k

        Returns
        -------
        bodies : dict
            Batch position -> encoded scored body (what the cache stores).
        rejected : dict
            Batch position -> (reason, error type) for rows that must be dead-lettered.
        degraded : dict
            Batch position -> degraded reason of the rows scored degraded (never cached).
        """
        rejected: dict[int, tuple[str, str]] = {}
        try:
            batch = self.ensemble.score(X, healthy, levels, self.guard)
        except Exception as exc:  # a bug in scoring must not lose the events
            if not self.on_error(raws, exc):
                raise
            reason = f"scoring failed: {type(exc).__name__}: {exc}"
            return {}, {p: (reason, "scoring_error") for p in positions}, {}
        if not getattr(self.health, "known", True):  # Redis down since start: marks unknown
            batch.degraded[batch.degraded < 0] = DEGRADED_REASONS.index(HEALTH_UNKNOWN)
        codes = batch.degraded.tolist()
        degraded = {p: DEGRADED_REASONS[c] for p, c in zip(positions, codes) if c >= 0}
        # ``imputed`` is a function of the encoded row, like the rest of the cached body.
        bodies = {p: b'{"imputed":%d,' % k + body[1:] for p, k, body in zip(positions, imputed.tolist(), self._bodies(batch))}
        if self.fallback == "dlq":
            for pos in [p for p, why in degraded.items() if why == PRIOR_ONLY]:
                del bodies[pos], degraded[pos]
                rejected[pos] = ("no member could score this event (fallback: dlq)", "no_member")
        return bodies, rejected, degraded

    def _bodies(self, batch: ScoreBatch) -> list[bytes]:
        """The event-independent part of each scored event, encoded (what the cache stores)."""
        return encode_bodies(batch, self.ensemble.member_tags, self.ensemble.class_names)
