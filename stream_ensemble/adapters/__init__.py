"""Adapters: the only code that does I/O with outside servers.

Owns the Kafka clients (``kafka``: batch source with commits after delivery, confirming sink,
topic administration) and the Redis stores (``redis_store``: prediction cache, model health).
They implement the Protocols of :mod:`stream_ensemble.ports` and wrap every third-party error
in an :class:`~stream_ensemble.errors.AdapterError`. A new Redis key or Kafka client setting goes
here (and into the README's key table); a new server is a new module. May import config, ports,
types, errors and the client libraries; never the core, serving or the worker.
"""
