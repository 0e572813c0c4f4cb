"""Serving: a batch of raw messages in, encoded scored events and dead letters out -- no I/O.

Owns the wire format (``codec``: decode and validate feature events, encode scored events and
DLQ records), the served ensemble (``ensemble``: encoder + pool + strategy + calibration +
conformal + explanation over one batch of arrays), loading it from the registry with every
artifact verified (``loading``), and the engine that ties them to the cache and health ports
(``engine``). A new field of the scored event goes into ``engine`` (and ``schemas/``); a new
validation rule into ``codec``. May import the core, :mod:`stream_ensemble.ports`, types,
errors and config; never adapters, the worker, Kafka, Redis or faust.
"""
