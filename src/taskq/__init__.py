"""taskq: a distributed task queue on Kafka and Redis."""

from .client import Client, TaskRequest
from .errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    InvalidTask,
    Retry,
    StoreError,
    StoreUnavailable,
    SubmitFailed,
    TaskNotFound,
    TaskqError,
    TaskStateError,
    TaskTimeout,
    UnknownTask,
    WaitTimeout,
)
from .models import TaskRecord, TaskState
from .registry import Registry, task
from .schedules import Schedule, every
from .settings import Settings
from .submitter import Submission

__all__ = [
    "BrokerError", "BrokerUnavailable", "Client", "ConfigError", "InvalidTask", "Registry", "Retry", "Settings",
    "StoreError", "StoreUnavailable", "SubmitFailed", "Submission", "TaskNotFound", "TaskRecord", "TaskRequest",
    "TaskState", "TaskStateError", "TaskTimeout", "TaskqError", "UnknownTask", "WaitTimeout", "task",
    "Schedule", "every",
]
__version__ = "0.1.0"
