"""The demo's experiment: a challenger at 20%, the faust outcome join, the held-out labels as outcomes.

The challenger is its own ensemble, ``demo-challenger``, trained once on the same split as the
champion (so the replayed held-out rows are unseen by both) from two of the pool's members,
``logreg`` and ``naive_bayes``: a smaller, cheaper ensemble whose accuracy is to be compared.
Being another ensemble name, it never becomes what ``serve`` picks as the latest ``default``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from stream_ensemble.ab.control import report
from stream_ensemble.adapters.ab_store import ABStore
from stream_ensemble.adapters.kafka import client_conf
from stream_ensemble.adapters.redis_store import connect
from stream_ensemble.config import ABConfig, KafkaConfig, RedisConfig
from stream_ensemble.core.experiments.spec import ExperimentSpec
from stream_ensemble.core.registry import Registry
from stream_ensemble.errors import KafkaAdapterError

CHALLENGER = "demo-challenger"
CHALLENGER_MEMBERS = ("logreg", "naive_bayes")
WEIGHT = 20.0
APP_ID = "stream-ensemble-demo-ab"


def ensure_challenger(registry: Path, say: Callable[[str], None]) -> str:
    """The challenger's tag, trained into ``registry`` when it has none yet (a few seconds)."""
    from stream_ensemble.core.data import load_bundled
    from stream_ensemble.core.members.families import default_pool
    from stream_ensemble.core.training import train

    reg = Registry(registry)
    if not reg.versions("ensembles", CHALLENGER):
        say(f"== training the challenger {CHALLENGER} ({' + '.join(CHALLENGER_MEMBERS)}) on the champion's split")
        train(load_bundled(), [s for s in default_pool(0) if s.model_id in CHALLENGER_MEMBERS], reg,
              ensemble_name=CHALLENGER)
    return f"{CHALLENGER}@v{reg.versions('ensembles', CHALLENGER)[-1]}"


@dataclass
class DemoExperiment:
    """A running demo experiment: its hash in Redis and the ``ab evaluate`` process."""

    store: ABStore
    spec: ExperimentSpec
    join: subprocess.Popen[bytes]
    log_path: Path
    log_start: int = 0

    @classmethod
    def start(cls, kafka: KafkaConfig, redis: RedisConfig, champion: str, challenger: str, run_id: str,
              log_path: Path) -> DemoExperiment:
        """Write ``se:ab:default`` (split, challenger at 20%) and start the faust join."""
        store = ABStore(connect(redis), redis.key_prefix)
        exp = f"demo-{run_id}"
        spec = ExperimentSpec("default", exp, champion, {challenger: WEIGHT}, "split", salt=exp)
        store.write("default", {**spec.to_fields(), "started_at": repr(time.time())}, replace=True)
        log_start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as fh:
            join = subprocess.Popen(
                [sys.executable, "-m", "stream_ensemble", "ab", "evaluate", "--bootstrap", kafka.bootstrap,
                 "--redis-url", redis.url, "--key-prefix", redis.key_prefix, "--scores-topic", kafka.scores_topic,
                 "--partitions", str(kafka.partitions), "--app-id", APP_ID],
                stdout=fh, stderr=fh)  # fmt: skip
        return cls(store, spec, join, log_path, log_start)

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds until the faust app logged ``Ready`` (its changelog restored), -1 on timeout.

        Scores that reached a restarting app while it was still restoring its changelog were
        seen held back (18 of 3,000 once: not re-keyed to the join within 90 s; joined, once
        each, after the app's next restart), so the demo publishes only once the app is ready.
        """
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s and self.join.poll() is None:
            with self.log_path.open("rb") as fh:
                fh.seek(self.log_start)
                if b"[^Worker]: Ready" in fh.read():
                    return time.monotonic() - t0
            time.sleep(0.2)
        return -1.0

    def publish_outcomes(self, kafka: KafkaConfig, scored: dict[str, dict[str, Any]], labels: dict[str, int],
                         topic: str = "outcomes") -> int:
        """The true label of every scored event of this experiment, as an outcome; how many."""
        producer = Producer({**client_conf(kafka), "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        failures: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        n = 0
        for eid, doc in scored.items():
            if doc.get("experiment") != self.spec.experiment:
                continue  # scored after the guardrail stopped the experiment: no arm to join
            value = orjson.dumps({"event_id": eid, "label": labels[eid], "timestamp": time.time()})
            producer.produce(topic, key=str(doc["entity_id"]).encode(), value=value, on_delivery=on_delivery)
            n += 1
            if n % 1000 == 0:
                producer.poll(0)
        if producer.flush(30) or failures:
            raise KafkaAdapterError(f"demo outcomes: not acknowledged, failures: {failures[:3]}")
        return n

    def wait_report(self, expected: int, timeout_s: float) -> dict[str, Any]:
        """The report once ``expected`` outcomes are joined (or at the timeout, with what there is)."""
        cfg = ABConfig(app_id=APP_ID)
        deadline = time.monotonic() + timeout_s
        while True:
            rep = report(self.store, "default", cfg)
            joined = sum(int(a["n"]) for a in rep["arms"].values())
            if joined >= expected or time.monotonic() > deadline or self.join.poll() is not None:
                rep["joined"] = joined
                return rep
            time.sleep(0.5)

    def stop(self) -> int:
        """Stop the experiment (every event goes to the champion again) and the join."""
        fields = self.store.read("default")
        if fields.get("experiment") == self.spec.experiment and fields.get("status") == "running":
            self.store.write("default", {"status": "stopped"})
        if self.join.poll() is None:
            self.join.send_signal(signal.SIGTERM)
        try:
            return self.join.wait(60)
        except subprocess.TimeoutExpired:
            self.join.kill()
            return self.join.wait()
