"""taskq's errors as HTTP statuses: one table, most specific class first."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import (
    BrokerError,
    DeadLetterNotFound,
    InvalidTask,
    ScheduleExists,
    ScheduleNotFound,
    StoreError,
    TaskNotFound,
    TaskqError,
    TaskStateError,
    WaitTimeout,
    WorkerNotFound,
    WorkflowNotFound,
)

# An error not listed maps to the status of its nearest listed base class (every one is a TaskqError).
STATUS: dict[type[TaskqError], int] = {
    TaskNotFound: 404,
    DeadLetterNotFound: 404,
    WorkflowNotFound: 404,
    WorkerNotFound: 404,
    TaskStateError: 409,
    ScheduleNotFound: 404,
    ScheduleExists: 409,
    InvalidTask: 422,
    WaitTimeout: 504,
    BrokerError: 503,
    StoreError: 503,
    TaskqError: 400,
}


def status_of(exc: TaskqError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def on_error(kafka_error: Callable[[], None], redis_error: Callable[[], None]) -> Callable[[TaskqError], None]:
    """What to count for an error besides answering it: Kafka and Redis failures have counters."""
    def count(exc: TaskqError) -> None:
        if isinstance(exc, BrokerError):
            kafka_error()
        elif isinstance(exc, StoreError):
            redis_error()
    return count
