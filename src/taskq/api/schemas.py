"""Request and response bodies of the HTTP API.

Entities (tasks, workers, task types, stats) are the SDK's own dataclasses in ``taskq.models``,
used as response models as they are; the bounds of a submission come from ``taskq.limits``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import limits
from ..models import TaskRecord, TaskState
from ..query import TaskFilter


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=limits.TASK_NAME_MAX, pattern=limits.TASK_NAME_RE.pattern,
                      description="Task name, e.g. add")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    max_retries: int | None = Field(None, ge=0, le=limits.MAX_RETRIES_MAX)
    timeout: float | None = Field(None, gt=0, le=limits.TIMEOUT_MAX, description="Time limit in seconds")
    key: str | None = Field(None, min_length=1, max_length=limits.KEY_MAX, description="Ordering key")
    delay: float | None = Field(None, ge=0, le=limits.DELAY_MAX,
                                description="Run no earlier than this many seconds later")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=limits.KEY_MAX,
        description="The same key (within its TTL) returns the same task id",
    )
    priority: Literal["high", "normal", "low"] = Field(
        "normal", description="The lane: high tasks start before normal ones, low after (needs TASKQ_PRIORITY_LANES)")
    rate_key: str | None = Field(None, min_length=1, max_length=limits.KEY_MAX,
                                 description="Counts against the task's per-key rate limit under this key")
    concurrency_key: str | None = Field(
        None, min_length=1, max_length=limits.KEY_MAX,
        description="Counts against the task's per-key concurrency limit under this key")


class Submitted(BaseModel):
    id: str
    status: str = "queued"


class BatchSubmitted(BaseModel):
    ids: list[str]
    status: str = "queued"


class TaskPage(BaseModel):
    items: list[TaskRecord]
    next_cursor: str | None = Field(description="Pass back as cursor for the next (older) page; null on the last")
    prev_cursor: str | None = Field(None, description="Pass back as cursor for the previous (newer) page; null on "
                                                      "the first")
    total: int | None = Field(None, description="Tasks the whole filter matches (a lower bound unless total_exact)")
    total_exact: bool = True


class TaskName(BaseModel):
    name: str
    total: int


class TaskNames(BaseModel):
    names: list[TaskName]


class BulkBody(BaseModel):
    """A bulk action's filter, as ``GET /api/tasks`` takes it (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    status: TaskState | None = None
    task: str | None = Field(None, max_length=limits.TASK_NAME_MAX)
    task_prefix: str | None = Field(None, max_length=limits.TASK_NAME_MAX)
    worker: str | None = Field(None, max_length=limits.TASK_NAME_MAX)
    since: float | None = Field(None, ge=0, description="Created at or after (epoch seconds)")
    until: float | None = Field(None, ge=0, description="Created at or before (epoch seconds)")
    q: str | None = Field(None, max_length=200, description="Found in the args, kwargs, error or id (any case)")
    dry_run: bool = Field(False, description="Only count what would be acted on")

    def filter(self) -> TaskFilter:
        return TaskFilter(status=self.status, task=self.task, task_prefix=self.task_prefix, worker=self.worker,
                          since=self.since, until=self.until, q=self.q)


class PurgeBody(BulkBody):
    older_than: float = Field(ge=0, description="Purge tasks that finished more than this many seconds ago")


class BulkDone(BaseModel):
    matched: int
    done: int
    skipped: int
    dry_run: bool
    capped: bool = Field(description="Stopped at limit (or the scan bound): more may match, call again")
    limit: int
