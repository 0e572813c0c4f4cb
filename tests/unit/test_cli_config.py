"""The CLI's settings: flag > env > --config file > default, clear one-line errors, --help lists variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stream_ensemble.cli import main
from stream_ensemble.config import SETTINGS


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["serve", "--bootstrap", "not-a-host:abc"], {}, "port of 'not-a-host:abc'"),
        (["serve"], {"SE_BOOTSTRAP": "kafka:"}, "port of 'kafka:'"),
        (["serve", "--redis-url", "redis://h:abc/0"], {}, "redis url"),
        # SE_FEATURES_TOPIC reaches the configuration (it used to be ignored by serve)
        (["serve"], {"SE_FEATURES_TOPIC": "scores"}, "distinct"),
        (["serve", "--scores-topic", "x"], {"SE_FEATURES_TOPIC": "x"}, "distinct"),
        (["topics"], {"SE_BOOTSTRAP": "a b:1"}, "not a valid host"),
        (["health", "list"], {"SE_REDIS_URL": "http://h"}, "redis url must start"),
    ],
)
def test_bad_settings_exit_2_with_one_line(args: list[str], env: dict[str, str], fragment: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_config_file_values_apply_and_flags_win(tmp_path: Path) -> None:
    conf = tmp_path / "se.toml"
    conf.write_text('[kafka]\nfeatures_topic = "same"\nscores_topic = "same"\n')
    result = CliRunner().invoke(main, ["--config", str(conf), "serve"])
    assert result.exit_code == 2 and "distinct" in result.output
    # the flag wins over the file: now the topics differ and validation reaches the registry
    result = CliRunner().invoke(main, ["--config", str(conf), "serve", "--scores-topic", "other",
                                       "--registry", str(tmp_path / "empty")])
    assert "distinct" not in result.output and "stream-ensemble train" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka]\nbootstrapp = 'h:1'\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "topics"])
    assert result.exit_code == 2 and "unknown key kafka.bootstrapp" in result.output
    result = CliRunner().invoke(main, ["topics"], env={"SE_CONFIG": str(bad)})
    assert result.exit_code == 2 and "unknown key" in result.output


def test_help_shows_every_variable_of_serve() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for s in SETTINGS:
        if s.flag in result.output:
            assert s.env in result.output
    for env in ("SE_BOOTSTRAP", "SE_REDIS_URL", "SE_FEATURES_TOPIC", "SE_EXPLAIN", "SE_CACHE_TTL_S", "SE_BATCH_SIZE"):
        assert env in result.output
    top = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    assert "SE_CONFIG" in top and "SE_LOG_FORMAT" in top
