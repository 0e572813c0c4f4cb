from __future__ import annotations

from pathlib import Path

import pytest

from stream_ensemble.config import load_config
from stream_ensemble.errors import ConfigError


def test_defaults_and_env_and_overrides() -> None:
    cfg = load_config({"SE_BATCH_SIZE": "250", "SE_REGISTRY": "/tmp/reg"}, kafka__group_id="g1", redis__url=None)
    assert cfg.kafka.batch_size == 250
    assert cfg.worker.registry == Path("/tmp/reg")
    assert cfg.kafka.group_id == "g1"
    assert cfg.redis.url.startswith("redis://")


@pytest.mark.parametrize(
    ("env", "overrides", "fragment"),
    [
        ({"SE_BATCH_SIZE": "many"}, {}, "batch_size must be int"),
        ({"SE_BATCH_SIZE": "0"}, {}, "batch size"),
        ({}, {"redis__url": "http://x"}, "redis url"),
        ({}, {"worker__explain": "verbose"}, "explain level"),
        ({}, {"kafka__scores_topic": "features"}, "distinct"),
        ({}, {"kafka__nope": 1}, "unknown setting"),
        ({}, {"bogus__x": 1}, "unknown setting"),
    ],
)
def test_bad_values_raise_config_error(env: dict, overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(env, **overrides)
