"""Kafka security settings reach every client: a SASL/PLAIN listener (started by ops/kafka.sh on
KAFKA_SASL_PORT = KAFKA_PORT+2) is reached with the credentials and refused without them, and the
password never appears in an error; the same over TLS (SASL_SSL on KAFKA_PORT+3, certificate signed
by the CA that ops/kafka.sh generates)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from stream_ensemble.adapters.kafka import KafkaSource, ensure_topics
from stream_ensemble.adapters.kafka_sink import KafkaSink
from stream_ensemble.config import KafkaConfig, load_config
from stream_ensemble.errors import KafkaAdapterError
from stream_ensemble.types import RawMessage

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sasl(servers: dict[str, str]) -> dict[str, str]:
    """Address and credentials of the SASL listener of the suite's broker."""
    host, _, port = servers["bootstrap"].rpartition(":")
    sasl_port = os.environ.get("KAFKA_SASL_PORT") or str(int(port) + 2)
    creds = Path(os.environ.get("KAFKA_DATA_DIR", REPO / "var" / "kafka")) / "sasl.env"
    values = dict(line.split("=", 1) for line in creds.read_text().split()) if creds.exists() else {}
    user = os.environ.get("KAFKA_SASL_USERNAME") or values.get("KAFKA_SASL_USERNAME")
    password = os.environ.get("KAFKA_SASL_PASSWORD") or values.get("KAFKA_SASL_PASSWORD")
    if not user or not password:
        msg = f"no SASL credentials ({creds} missing): the broker was not started by ops/kafka.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return {"bootstrap": f"{host}:{sasl_port}", "user": user, "password": password}


def _env(sasl: dict[str, str], password: str | None = None) -> dict[str, str]:
    return {"SE_BOOTSTRAP": sasl["bootstrap"], "SE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SE_KAFKA_SASL_MECHANISM": "PLAIN", "SE_KAFKA_SASL_USERNAME": sasl["user"],
            "SE_KAFKA_SASL_PASSWORD": password or sasl["password"]}


def _round_trip(cfg: KafkaConfig, payload: bytes) -> list[bytes]:
    """Create the features topic (admin client), produce ``payload`` and consume it back."""
    ensure_topics(cfg, [(cfg.features_topic, 1)])
    sink = KafkaSink(cfg)
    sink.send(cfg.features_topic, b"k", payload)
    sink.flush_and_confirm(20)
    source = KafkaSource(cfg)
    got: list[RawMessage] = []
    deadline = time.monotonic() + 30
    try:
        while not got and time.monotonic() < deadline:
            got = source.poll_batch(10, 0.5)
    finally:
        source.close()
    return [m.value for m in got]


def test_sasl_listener_reached_with_credentials(sasl: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    cfg = load_config(_env(sasl), kafka__features_topic=f"sasl-{tag}-in", kafka__scores_topic=f"sasl-{tag}-out",
                      kafka__dlq_topic=f"sasl-{tag}-dlq", kafka__group_id=f"sasl-{tag}").kafka
    assert _round_trip(cfg, b"through SASL") == [b"through SASL"]


def test_sasl_listener_refuses_without_or_with_wrong_credentials(sasl: dict[str, str]) -> None:
    plaintext = KafkaConfig(bootstrap=sasl["bootstrap"])
    with pytest.raises(KafkaAdapterError):
        ensure_topics(plaintext, [("never-created", 1)], timeout_s=5)
    wrong = load_config(_env(sasl, password="not-the-password-42")).kafka
    with pytest.raises(KafkaAdapterError) as info:
        ensure_topics(wrong, [("never-created", 1)], timeout_s=5)
    assert "not-the-password-42" not in str(info.value)


def test_cli_reads_security_settings_from_the_environment(sasl: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, **_env(sasl), "SE_FEATURES_TOPIC": f"sasl-{tag}-f", "SE_SCORES_TOPIC": f"sasl-{tag}-s",
           "SE_DLQ_TOPIC": f"sasl-{tag}-d"}
    ok = subprocess.run([sys.executable, "-m", "stream_ensemble", "--log-format", "json", "topics"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"sasl-{tag}-f" in ok.stdout
    for line in ok.stderr.splitlines():  # librdkafka's lines too
        orjson.loads(line)


@pytest.fixture(scope="module")
def tls(sasl: dict[str, str]) -> dict[str, str]:
    """The SASL_SSL listener (KAFKA_PORT+3) and the CA that signed its certificate."""
    host, _, sasl_port = sasl["bootstrap"].rpartition(":")
    tls_port = os.environ.get("KAFKA_TLS_PORT") or str(int(sasl_port) + 1)
    ca = Path(os.environ.get("KAFKA_DATA_DIR", REPO / "var" / "kafka")) / "tls" / "ca.pem"
    if not ca.exists():
        msg = f"no TLS material ({ca} missing): the broker was not started by ops/kafka.sh"
        pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
    return {**sasl, "bootstrap": f"{host}:{tls_port}", "ca": str(ca)}


def test_tls_listener_reached_with_the_ca_and_refused_without(tls: dict[str, str], tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {**_env(tls), "SE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SE_KAFKA_SSL_CA": tls["ca"]}
    cfg = load_config(env, kafka__features_topic=f"tls-{tag}-in", kafka__group_id=f"tls-{tag}").kafka
    assert _round_trip(cfg, b"through TLS") == [b"through TLS"]
    # A CA that did not sign the broker's certificate: the handshake fails, nothing is created.
    other_ca = tmp_path / "other-ca.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                           "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)], capture_output=True)
    assert made.returncode == 0, made.stderr
    untrusted = load_config({**env, "SE_KAFKA_SSL_CA": str(other_ca)}).kafka
    with pytest.raises(KafkaAdapterError):
        ensure_topics(untrusted, [(f"tls-{tag}-never", 1)], timeout_s=5)
