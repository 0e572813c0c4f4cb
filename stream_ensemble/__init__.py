"""stream-ensemble: serve a selected, calibrated ensemble of many models on a Kafka stream.

Layers (dependencies point down only):

* :mod:`stream_ensemble.core` -- pure numpy / scikit-learn: pool, registry, combiners,
  selection, calibration, uncertainty, explanation. No Kafka, no Redis.
* :mod:`stream_ensemble.engine` -- turns a batch of raw messages into scored events and
  DLQ records. Still no I/O.
* :mod:`stream_ensemble.adapters` -- Kafka (confluent-kafka), Redis (redis-py), codec.
* :mod:`stream_ensemble.worker` -- the poll / score / produce / commit loop.
"""

__version__ = "0.1.0"
