"""stream-ensemble: serve a selected, calibrated ensemble of many models on a Kafka stream.

Layers, lowest first; a layer imports only those before it (``tests/unit/test_purity.py``):

* :mod:`~stream_ensemble.types`, :mod:`~stream_ensemble.errors`, :mod:`~stream_ensemble.config`
  -- shared values, the error tree, the frozen configuration;
* :mod:`stream_ensemble.core` -- pure numpy / scikit-learn: data, members, registry, combiners,
  selection, confidence, strategies, training. No Kafka, no Redis;
* :mod:`stream_ensemble.serving` -- codec, serving ensemble and engine: a batch of raw messages
  in, scored events and DLQ records out. Still no I/O (it talks to :mod:`~stream_ensemble.ports`);
* :mod:`stream_ensemble.adapters` -- Kafka (confluent-kafka), Redis (redis-py);
* :mod:`stream_ensemble.worker` -- the poll / score / produce / commit loop;
* :mod:`stream_ensemble.demo`, :mod:`stream_ensemble.bench`, :mod:`stream_ensemble.cli` -- what
  people run.
"""

__version__ = "0.1.0"
