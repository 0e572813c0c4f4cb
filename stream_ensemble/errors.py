"""The exception tree: one root, one branch per layer.

Where the meaning matches, an error also inherits a builtin (as scikit-learn does with
``NotFittedError``), so ``except ValueError`` still catches a bad schema.
"""


class StreamEnsembleError(Exception):
    """Root of every error raised by stream-ensemble."""


class ConfigError(StreamEnsembleError, ValueError):
    """A configuration value or CLI argument is invalid (raised at load time, not mid-stream)."""


class SchemaError(StreamEnsembleError, ValueError):
    """An event does not match its JSON schema or cannot be decoded."""


class ModelPoolError(StreamEnsembleError):
    """The model pool or registry is inconsistent (missing artifact, shape mismatch...)."""


class IntegrityError(ModelPoolError):
    """An artifact's sha256 does not match its manifest; it is refused."""


class SelectionError(StreamEnsembleError, ValueError):
    """A member selection problem has no feasible solution or invalid inputs."""


class CombinerError(StreamEnsembleError, ValueError):
    """A combiner got invalid inputs or was used before ``fit``."""


class AdapterError(StreamEnsembleError):
    """An edge adapter (Kafka, Redis) failed."""


class KafkaAdapterError(AdapterError):
    """A Kafka operation failed (wraps confluent-kafka errors)."""


class RedisAdapterError(AdapterError):
    """A Redis operation failed (wraps redis-py errors)."""
