"""The local stack for development and tests, kept off the worker's import path: ``services`` (a real
Kafka broker and Redis, processes we start and stop by PID), ``prometheus`` (a Prometheus with the
chart's rules for ``taskq dev --prometheus``) and ``stack`` (``taskq dev``: all of it, logs
prefixed by component)."""

from .services import (
    KAFKA_VERSION,
    KafkaServer,
    RedisServer,
    RedisTls,
    SecureListener,
    default_cache_dir,
    default_kafka_jars,
    free_port,
    port_in_use,
    python_argv,
    spawn,
    stop_process,
    wait_until,
)

__all__ = [
    "KAFKA_VERSION", "KafkaServer", "RedisServer", "RedisTls", "SecureListener", "default_cache_dir",
    "default_kafka_jars", "free_port", "port_in_use", "python_argv", "spawn", "stop_process", "wait_until",
]
