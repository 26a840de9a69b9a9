"""taskq: a distributed task queue on Kafka and Redis."""

from .aio import AsyncClient
from .client import Client, TaskRequest, WorkflowRef
from .context import TaskContext, current, progress
from .errors import (
    BrokerError,
    BrokerUnavailable,
    Cancelled,
    ConfigError,
    DeadLetterNotFound,
    InvalidMessage,
    InvalidTask,
    NotInTask,
    Retry,
    ScheduleExists,
    ScheduleNotFound,
    StoreError,
    StoreUnavailable,
    SubmitFailed,
    TaskNotFound,
    TaskqError,
    TaskStateError,
    TaskTimeout,
    UnknownTask,
    WaitTimeout,
    WorkerNotFound,
    WorkflowNotFound,
)
from .models import TaskRecord, TaskState
from .registry import Registry, task
from .schedules import Schedule, every
from .settings import Settings
from .submitter import Submission
from .workflows import WorkflowRecord, chain, chord, group, sig

__all__ = [
    "AsyncClient", "BrokerError", "BrokerUnavailable", "Client", "ConfigError", "InvalidTask", "Registry", "Retry",
    "Settings",
    "StoreError", "StoreUnavailable", "SubmitFailed", "Submission", "TaskNotFound", "TaskRecord", "TaskRequest",
    "TaskState", "TaskStateError", "TaskTimeout", "TaskqError", "UnknownTask", "WaitTimeout", "WorkflowNotFound",
    "WorkflowRecord", "WorkflowRef", "chain", "chord", "group", "sig", "task",
    "Schedule", "every", "Cancelled", "NotInTask", "TaskContext", "current", "progress",
    "DeadLetterNotFound", "InvalidMessage", "ScheduleExists", "ScheduleNotFound", "WorkerNotFound",
]
__version__ = "0.1.0"
