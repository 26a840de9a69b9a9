"""One error tree for taskq.

Library exceptions (Kafka clients, redis-py) are translated to these at the
boundary modules (``taskq.kafka``, ``store``) with ``raise ... from exc`` so callers
only ever catch ``TaskqError`` subclasses. The HTTP API maps them to status codes
in one table (``taskq.api.errors``).
"""

from __future__ import annotations


class TaskqError(Exception):
    """Root of every error taskq raises on purpose."""


class ConfigError(TaskqError):
    """A setting or option is invalid."""


class BrokerError(TaskqError):
    """Kafka failed in a way the caller should know about."""


class BrokerUnavailable(BrokerError):
    """Kafka could not be reached or did not acknowledge in time."""


class SubmitFailed(BrokerError):
    """Kafka refused or did not acknowledge a pipelined submission (nothing of it was recorded)."""


class StoreError(TaskqError):
    """Redis failed in a way the caller should know about."""


class StoreUnavailable(StoreError):
    """Redis could not be reached."""


class TaskNotFound(TaskqError):
    """No task with this id exists (or its record has expired)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found (unknown id, or its record expired)")
        self.task_id = task_id


class WorkflowNotFound(TaskqError):
    """No workflow with this id exists (or its record has expired)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} not found (unknown id, or its record expired)")
        self.workflow_id = workflow_id


class DeadLetterNotFound(TaskqError):
    """No dead letter at this partition and offset (never written, or Kafka's retention removed it)."""

    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(f"no dead letter at {partition}:{offset} (wrong position, or past the topic's retention)")
        self.partition, self.offset = partition, offset


class WorkerNotFound(TaskqError):
    """No worker with this id has registered (in the last day)."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} not found (no heartbeat from it in the last day)")
        self.worker_id = worker_id


class InvalidTask(TaskqError):
    """A submission is malformed: unknown task name, bad arguments, limits exceeded."""


class InvalidMessage(InvalidTask):
    """Bytes on the tasks topic that are not a taskq message (a worker dead-letters them)."""


class TaskStateError(TaskqError):
    """An operation does not apply to a task in its current state (e.g. cancel a finished task)."""


class UnknownTask(TaskqError):
    """A worker received a task name it has no function for."""


class TaskTimeout(TaskqError):
    """A task ran longer than its time limit and was killed; a task record's error names it."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"the task exceeded its time limit of {limit:g}s and was killed")
        self.limit = limit


class WaitTimeout(TaskqError):
    """A client gave up waiting for a task to finish."""


class ScheduleNotFound(TaskqError):
    """No periodic schedule has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} not found")
        self.name = name


class ScheduleExists(TaskqError):
    """A schedule with this name exists already (the API answers 409)."""


class Retry(Exception):
    """Raise from a task to ask for another attempt, optionally after ``delay`` seconds."""

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay


class Cancelled(Exception):
    """Raise from a task to stop it as cancelled (after ``taskq.current().is_cancelled()`` said so).

    Like ``Retry`` it is a signal from the task, not an error of taskq's: the run ends ``cancelled``
    and is not retried."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)


class NotInTask(TaskqError):
    """``taskq.current()`` or ``taskq.progress()`` was called outside a running task."""
