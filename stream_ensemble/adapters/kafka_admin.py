"""Connection settings shared by every Kafka client, and topic administration.

:func:`client_conf` is the one place bootstrap servers and security (``security.protocol``,
SASL, TLS) become librdkafka settings, so the consumer, the producer and the admin client
always agree. The topic helpers create topics and raise partition counts for ``serve``,
``topics``, the demo and the benchmarks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # type: ignore[attr-defined]

from stream_ensemble.config import KafkaConfig
from stream_ensemble.errors import KafkaAdapterError

# librdkafka's admin log lines go through this Python logger (confluent-kafka's ``logger``
# setting), so they follow --log-format json instead of being printed raw on stderr.
ADMIN_LOG = logging.getLogger("librdkafka.admin")

_SECURITY_KEYS = (
    ("security_protocol", "security.protocol"), ("sasl_mechanism", "sasl.mechanism"),
    ("sasl_username", "sasl.username"), ("sasl_password", "sasl.password"),
    ("ssl_ca_location", "ssl.ca.location"), ("ssl_certificate_location", "ssl.certificate.location"),
    ("ssl_key_location", "ssl.key.location"), ("ssl_key_password", "ssl.key.password"),
)


def client_conf(cfg: KafkaConfig | str) -> dict[str, Any]:
    """librdkafka settings every client of ``cfg`` needs: bootstrap servers and security.

    Use it for every Consumer, Producer and AdminClient so that ``security.protocol``, SASL
    and TLS apply everywhere. A bare bootstrap string means PLAINTEXT.
    """
    if isinstance(cfg, str):
        return {"bootstrap.servers": cfg}
    conf: dict[str, Any] = {"bootstrap.servers": cfg.bootstrap}
    if cfg.security_protocol != "PLAINTEXT":
        conf["security.protocol"] = cfg.security_protocol
        for name, key in _SECURITY_KEYS[1:]:
            value = getattr(cfg, name)
            if value and (key.startswith("ssl.") or cfg.security_protocol.startswith("SASL_")):
                conf[key] = value
    return conf


def admin_client(cfg: KafkaConfig | str) -> AdminClient:
    """An AdminClient whose librdkafka logs go to the ``librdkafka.admin`` logger.

    The admin client forwards its logs only when polled: call ``poll(0)`` after each request.
    """
    return AdminClient(client_conf(cfg), logger=ADMIN_LOG)


def ensure_topics(kafka: KafkaConfig | str, topics: Iterable[tuple[str, int]], timeout_s: float = 30.0) -> None:
    """Create topics that do not exist yet (``(name, partitions)``); existing ones are kept.

    ``kafka`` is the connection (a :class:`KafkaConfig`, or a bare bootstrap string for PLAINTEXT).

    Raises
    ------
    KafkaAdapterError
        The broker is unreachable or refused to create a topic.
    """
    bootstrap = kafka if isinstance(kafka, str) else kafka.bootstrap
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise KafkaAdapterError(f"Kafka at {bootstrap} is not reachable: {exc}") from exc
    finally:
        admin.poll(0)
    # replication_factor -1: the broker's default.replication.factor (1 on the single dev node,
    # 3 on ops/kafka-cluster.sh), so a topic survives a broker where the cluster can afford it
    new = [NewTopic(name, num_partitions=parts, replication_factor=-1) for name, parts in topics if name not in existing]
    if not new:
        return
    for name, fut in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaAdapterError(f"cannot create topic {name}: {exc}") from exc
    # Metadata propagates asynchronously; wait until every topic is visible.
    deadline = time.monotonic() + timeout_s
    wanted = {t.topic for t in new}
    while time.monotonic() < deadline:
        if wanted <= set(admin.list_topics(timeout=timeout_s).topics):
            return
        time.sleep(0.1)
    raise KafkaAdapterError(f"topics {sorted(wanted)} not visible after {timeout_s}s")


def topic_partitions(kafka: KafkaConfig | str, names: Iterable[str], timeout_s: float = 30.0) -> dict[str, int]:
    """Partition count of each existing topic among ``names`` (missing topics are left out).

    Raises
    ------
    KafkaAdapterError
        The broker is unreachable.
    """
    admin = admin_client(kafka)
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise KafkaAdapterError(f"cannot read topic metadata: {exc}") from exc
    finally:
        admin.poll(0)
    return {n: len(topics[n].partitions) for n in names if n in topics}


def raise_partitions(kafka: KafkaConfig | str, counts: dict[str, int], timeout_s: float = 30.0) -> dict[str, int]:
    """Raise each topic of ``counts`` to that many partitions where it has fewer.

    Kafka can only add partitions (and adding them moves keys to other partitions for new
    events). Returns the topics changed with their new counts.

    Raises
    ------
    KafkaAdapterError
        The broker refused.
    """
    current = topic_partitions(kafka, counts, timeout_s)
    todo = [NewPartitions(t, n) for t, n in counts.items() if t in current and current[t] < n]
    if not todo:
        return {}
    admin = admin_client(kafka)
    for topic, fut in admin.create_partitions(todo, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaAdapterError(f"cannot raise partitions of {topic}: {exc}") from exc
    admin.poll(0)
    return {p.topic: p.new_total_count for p in todo}
