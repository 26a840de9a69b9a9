"""Request and response bodies of the HTTP API.

Entities (tasks, workers, task types, stats) are the SDK's own dataclasses in ``taskq.models``,
used as response models as they are; the bounds of a submission come from ``taskq.limits``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import limits
from ..models import TaskRecord


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


class Submitted(BaseModel):
    id: str
    status: str = "queued"


class BatchSubmitted(BaseModel):
    ids: list[str]
    status: str = "queued"


class TaskPage(BaseModel):
    items: list[TaskRecord]
    next_cursor: str | None
