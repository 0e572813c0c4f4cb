"""docker-compose.yml, Prometheus and Grafana files agree with the code they drive.

There is no Docker engine on the development machines, so the compose topology cannot be run
here; these checks catch what would break it silently: a command line the CLI no longer accepts,
an ``SE_*`` variable that no setting reads, a healthcheck or scrape on the wrong port, and a
dashboard query on a series the worker does not expose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stream_ensemble.adapters.metrics import WorkerMetrics
from stream_ensemble.cli import main
from stream_ensemble.config import SETTINGS

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP = [name for name, s in SERVICES.items() if s.get("image") == "stream-ensemble:local"]


def test_every_app_service_builds_the_project_image() -> None:
    assert {"trainer", "topics", "worker", "demo-producer"} <= set(APP)


@pytest.mark.parametrize("name", [n for n in APP if "entrypoint" not in SERVICES[n]])
def test_app_commands_are_accepted_by_the_cli(name: str) -> None:
    # `--help` after the real arguments: click rejects an unknown option or command first
    result = CliRunner().invoke(main, [*SERVICES[name]["command"], "--help"])
    assert result.exit_code == 0, f"{name}: {result.output}"


def test_app_environment_names_real_settings() -> None:
    # a variable counts when the settings table or the command's own --help names it
    # (click's auto_envvar_prefix gives options outside the table SE_<COMMAND>_<OPTION>)
    runner = CliRunner()
    for name in APP:
        env = SERVICES[name].get("environment", {})
        if not env:
            continue
        command = SERVICES[name]["command"] if "entrypoint" not in SERVICES[name] else []
        shown = runner.invoke(main, [*command, "--help"]).output + runner.invoke(main, ["--help"]).output
        known = {s.env for s in SETTINGS} | set(re.findall(r"\bSE_[A-Z0-9_]+", shown))
        for var in env:
            assert var in known, f"{name}: {var} is read by no setting or option"


def test_healthcheck_and_scrape_use_the_metrics_port() -> None:
    worker = SERVICES["worker"]
    port = int(worker["environment"]["SE_METRICS_PORT"])
    assert f":{port}/healthz" in " ".join(worker["healthcheck"]["test"])
    scrape = yaml.safe_load((REPO / "ops" / "prometheus" / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert [c["port"] for c in job["dns_sd_configs"]] == [port]
    assert job["dns_sd_configs"][0]["names"] == ["worker"]


def test_dashboard_queries_only_exposed_series() -> None:
    exposed = {m.name for m in WorkerMetrics().registry.collect()}
    for path in (REPO / "ops" / "grafana" / "dashboards").glob("*.json"):
        exprs = re.findall(r'"expr":\s*"((?:[^"\\]|\\.)*)"', path.read_text())
        assert exprs, f"{path.name} has no queries"
        json.loads(path.read_text())  # and is valid JSON
        for expr in exprs:
            for series in re.findall(r"\bse_[a-z_]+", expr):
                base = re.sub(r"_(total|bucket|sum|count|created|info)$", "", series)
                assert base in exposed or series in exposed, f"{path.name}: {series} is not exposed by the worker"
