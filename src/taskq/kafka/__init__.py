"""Everything Kafka, behind one seam: ``transport(settings)`` picks the client library.

``TASKQ_KAFKA_CLIENT=confluent`` (librdkafka, the default) or ``kafka-python``. Callers use the
protocols of ``base`` and never import a Kafka client; see docs/architecture.md, "The Kafka seam".
"""

from __future__ import annotations

from ..errors import ConfigError
from ..settings import Settings
from .base import Admin, Consumer, OnDelivery, PartitionListener, Producer, Record, Transport


def transport(settings: Settings) -> Transport:
    """The configured client library's adapter (imported only when chosen)."""
    if settings.kafka_client == "confluent":
        from .confluent import ConfluentTransport

        return ConfluentTransport(settings)
    if settings.kafka_client == "kafka-python":
        from .kafka_python import KafkaPythonTransport

        return KafkaPythonTransport(settings)
    raise ConfigError(f"unknown Kafka client {settings.kafka_client!r}: use kafka-python or confluent")


def ensure_topics(settings: Settings, *, timeout: float = 30.0) -> None:
    """Create the task and dead-letter topics if they do not exist yet (one-off admin connection)."""
    admin = transport(settings).admin(timeout=timeout)
    try:
        admin.ensure_topics(timeout=timeout)
    finally:
        admin.close()


def consumer_lag(settings: Settings) -> dict[int, int]:
    """Per-partition lag of the worker group (one-off admin connection; reuse ``Admin`` when polling)."""
    admin = transport(settings).admin()
    try:
        return admin.lag()
    finally:
        admin.close()


def broker_answers(bootstrap: str, *, timeout: float = 3.0) -> bool:
    """Whether the plaintext broker at ``bootstrap`` lists its topics: the readiness of the broker
    ``taskq dev`` and the tests start. It takes no settings, so no ``TASKQ_*`` variable changes what
    is asked; raises whatever the client raises while the broker is not up."""
    from kafka import KafkaAdminClient

    ms = int(timeout * 1000)
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=ms, bootstrap_timeout_ms=ms)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


__all__ = [
    "Admin", "Consumer", "OnDelivery", "PartitionListener", "Producer", "Record", "Transport",
    "broker_answers", "consumer_lag", "ensure_topics", "transport",
]
