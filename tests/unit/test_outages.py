"""Redis down at start is advisory (served, flagged health_unknown); outages are logged once per state change."""

from __future__ import annotations

import logging

import orjson
import pytest
import redis

from stream_ensemble.adapters import redis_store
from stream_ensemble.adapters.redis_store import RedisCache, RedisHealthStore, connect
from stream_ensemble.config import RedisConfig
from stream_ensemble.errors import RedisAdapterError
from stream_ensemble.serving.engine import ScoringService
from stream_ensemble.serving.ensemble import ServingEnsemble
from stream_ensemble.testing import raw


class FlakyRedis:
    """hgetall / mget that raise while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.health: dict[bytes, bytes] = {}

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("Connection refused")

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        self._check()
        return dict(self.health)

    def mget(self, keys: list[str]) -> list[bytes | None]:
        self._check()
        return [None] * len(keys)

    @property
    def connection_pool(self) -> object:
        fake = self

        class Conn:
            def send_packed_command(self, chunks: list[bytes]) -> None:
                fake._check()

            def read_response(self) -> object:
                fake._check()
                return 0

            def disconnect(self) -> None:
                pass

        class Pool:
            def get_connection(self) -> Conn:
                fake._check()
                return Conn()

            def release(self, conn: Conn) -> None:
                pass

        return Pool()


def test_connect_advisory_returns_a_client_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    cfg = RedisConfig(url="redis://:hunter2@127.0.0.1:1/0", socket_timeout_s=0.2)
    with pytest.raises(RedisAdapterError) as err:
        connect(cfg)
    assert "hunter2" not in str(err.value)
    redis_store.OUTAGE.down_since = None
    with caplog.at_level("WARNING", logger="stream_ensemble.redis"):
        client = connect(cfg, advisory=True)
    assert client is not None
    lines = [r for r in caplog.records if getattr(r, "event", None) == "redis"]
    assert len(lines) == 1 and lines[0].state == "down" and "hunter2" not in lines[0].getMessage()
    redis_store.OUTAGE.down_since = None


def test_outage_is_two_log_lines_and_unknown_health_is_flagged(small_ensemble: ServingEnsemble, records: list[dict],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    fake = FlakyRedis()
    health = RedisHealthStore(fake, refresh_s=0.001)  # type: ignore[arg-type]
    cache = RedisCache(fake)  # type: ignore[arg-type]
    service = ScoringService(small_ensemble, health, cache)
    redis_store.OUTAGE.down_since = None

    def batch(k: int) -> list:
        return [raw(orjson.dumps({"event_id": f"e{k}-{i}", "entity_id": "u", "timestamp": 1.0, "features": records[i]}),
                    offset=i) for i in range(5)]

    with caplog.at_level(logging.INFO, logger="stream_ensemble.redis"):
        for k in range(5):
            docs = [orjson.loads(v) for _, v, _ in service.handle(batch(k)).scored]
            assert len(docs) == 5 and all(d["degraded_reason"] == "health_unknown" for d in docs)
        fake.down = False
        docs = [orjson.loads(v) for _, v, _ in service.handle(batch(9)).scored]
    assert health.known and all(not d["degraded"] for d in docs), "marks read again: clean scores"
    states = [r.state for r in caplog.records if getattr(r, "event", None) == "redis"]
    assert states == ["down", "up"], "one line when the outage starts, one when it ends"


def test_fault_settings_have_variables_and_ranges() -> None:
    from stream_ensemble.config import KafkaConfig, WorkerConfig, load_config
    from stream_ensemble.errors import ConfigError

    cfg = load_config(env={"SE_SESSION_TIMEOUT_S": "7", "SE_MEMBER_DEADLINE_S": "0.25", "SE_BREAKER_FAILURES": "0",
                           "SE_BREAKER_COOLDOWN_S": "5", "SE_FALLBACK": "dlq"})
    assert cfg.kafka.session_timeout_s == 7.0 and cfg.worker.member_deadline_s == 0.25
    assert cfg.worker.breaker_failures == 0 and cfg.worker.breaker_cooldown_s == 5.0 and cfg.worker.fallback == "dlq"
    for bad in ({"session_timeout_s": 0.5}, {"session_timeout_s": 4000.0}):
        with pytest.raises(ConfigError):
            KafkaConfig(**bad)  # type: ignore[arg-type]
    for bad in ({"member_deadline_s": -1.0}, {"breaker_cooldown_s": 0.0}, {"fallback": "drop"}):
        with pytest.raises(ConfigError):
            WorkerConfig(**bad)  # type: ignore[arg-type]


class FlakyGet:
    """``get`` that raises while ``down`` (the deploy target read)."""

    def __init__(self) -> None:
        self.down = True

    def get(self, key: str) -> bytes | None:
        if self.down:
            raise redis.ConnectionError("Connection refused")
        return b"default@v2"


def test_deploy_target_reads_during_an_outage_are_two_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    from stream_ensemble.adapters.deploy_store import RedisDeployStore

    fake = FlakyGet()
    store = RedisDeployStore(fake, "se", "default")  # type: ignore[arg-type]
    redis_store.OUTAGE.down_since = None
    with caplog.at_level(logging.INFO):
        targets = [store.target() for _ in range(20)]  # one read per deploy poll
        fake.down = False
        targets += [store.target() for _ in range(3)]
    assert targets == [None] * 20 + ["default@v2"] * 3 and store.errors == 20
    lines = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("stream_ensemble")]
    assert [getattr(r, "state", None) for r in lines] == ["down", "up"], [r.getMessage() for r in lines]
    assert "deploy target read" in lines[0].getMessage()


def test_experiment_reads_during_an_outage_are_two_log_lines(small_ensemble: ServingEnsemble,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from stream_ensemble.serving.router import ExperimentRouter
    from stream_ensemble.testing import InMemoryHealth

    down = [True]
    clock = [0.0]

    def read() -> dict[str, str]:
        if down[0]:
            raise redis.ConnectionError("Connection refused")
        return {}

    def tick() -> float:
        clock[0] += 2.0  # every look re-reads (refresh_s 1)
        return clock[0]

    router = ExperimentRouter(ScoringService(small_ensemble, InMemoryHealth(), None), "default", read,
                              lambda tag: ScoringService(small_ensemble, InMemoryHealth(), None), clock=tick)
    with caplog.at_level(logging.INFO, logger="stream_ensemble"):
        for _ in range(20):
            assert router.refresh() is None
        down[0] = False
        for _ in range(3):
            router.refresh()
        down[0] = True
        router.refresh()
    states = [r.state for r in caplog.records if getattr(r, "event", None) == "experiment_read"]
    assert states == ["failing", "ok", "failing"], "one line per state change, not one per read"
