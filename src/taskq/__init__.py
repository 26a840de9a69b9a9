"""taskq: a distributed task queue on Kafka and Redis."""

from .client import Client, TaskRequest
from .errors import Retry, TaskqError
from .models import TaskRecord, TaskState
from .registry import Registry, task
from .settings import Settings

__all__ = ["Client", "Registry", "Retry", "Settings", "TaskRecord", "TaskRequest", "TaskState", "TaskqError", "task"]
__version__ = "0.1.0"
