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


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    conf = tmp_path / "se.toml"
    conf.write_text('[kafka]\nbootstrap = "file-host:1111"\ngroup_id = "from-file"\nbatch_size = 77\n'
                    '[redis]\nurl = "redis://file-host:2222/3"\n')
    env = {"SE_GROUP_ID": "from-env", "SE_REDIS_URL": "redis://env-host:3333/0"}
    cfg = load_config(env, conf, kafka__group_id="from-flag")
    assert cfg.kafka.group_id == "from-flag"          # flag beats env and file
    assert cfg.redis.url == "redis://env-host:3333/0"  # env beats file
    assert cfg.kafka.bootstrap == "file-host:1111"     # file beats default
    assert cfg.kafka.batch_size == 77
    assert cfg.kafka.features_topic == "features"      # default
    assert load_config({"SE_CONFIG": str(conf)}).kafka.group_id == "from-file"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[kafka]\nbatchsize = 3\n", "unknown key kafka.batchsize"),
        ("[kafkaa]\nbootstrap = 'h:1'\n", "unknown section"),
        ("[kafka\n", "not valid TOML"),
        ("[kafka]\nbatch_size = 'many'\n", "batch_size must be int"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, fragment: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config({}, conf)


def test_missing_config_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config({}, tmp_path / "nope.toml")


@pytest.mark.parametrize("bootstrap", ["not-a-host:abc", "host", "host:0", "host:70000", ":9092", "a b:9092", "h:1,,h:2", " "])
def test_bad_bootstrap_refused(bootstrap: str) -> None:
    with pytest.raises(ConfigError, match="bootstrap"):
        load_config({"SE_BOOTSTRAP": bootstrap})


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:9092", "kafka:9092,kafka-2:9093", "[::1]:9092", "SASL_SSL://b-1.example.com:9096"])
def test_good_bootstrap_accepted(bootstrap: str) -> None:
    assert load_config({"SE_BOOTSTRAP": bootstrap}).kafka.bootstrap == bootstrap


@pytest.mark.parametrize("url", ["redis://host:abc/0", "redis://:6379/0", "redis://h:6379/x", "http://h:6379", "redis://h:99999/0"])
def test_bad_redis_url_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="redis url"):
        load_config({"SE_REDIS_URL": url})


def test_redis_password_never_in_errors_or_repr() -> None:
    from stream_ensemble.addresses import redact_url

    with pytest.raises(ConfigError) as info:
        load_config({"SE_REDIS_URL": "redis://user:hunter2@h:6379/x"})
    assert "hunter2" not in str(info.value)
    cfg = load_config({"SE_REDIS_URL": "redis://:hunter2@h:6379/0"})
    assert "hunter2" not in repr(cfg) and "hunter2" not in repr(cfg.redis)
    assert redact_url("rediss://u:p%40ss@h:1/0") == "rediss://u:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_every_setting_row_names_a_real_field_and_a_unique_env_and_flag() -> None:
    from stream_ensemble.config import SETTINGS, setting_default

    for s in SETTINGS:
        setting_default(s.key)  # raises for a row without a field
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    assert len({s.flag for s in SETTINGS}) == len(SETTINGS)


@pytest.mark.parametrize("url", ["redis+cluster://10.0.0.1:7000/0", "redis+cluster://:pw@n1:7000",
                                 "redis+sentinel://s1:26379,s2:26379/mymaster/0", "redis+sentinel://s1/mymaster"])
def test_cluster_and_sentinel_urls_accepted(url: str) -> None:
    assert load_config({"SE_REDIS_URL": url}).redis.url == url


@pytest.mark.parametrize(("url", "fragment"), [
    ("redis+cluster://n1:7000/3", "only database 0"),
    ("redis+sentinel://s1:26379", "names the service"),
    ("redis+sentinel://s1:x/mymaster", "port of"),
])
def test_bad_cluster_and_sentinel_urls_refused(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config({"SE_REDIS_URL": url})
