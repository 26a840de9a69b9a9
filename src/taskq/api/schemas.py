"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=200, description="Task name, e.g. add")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    max_retries: int | None = Field(None, ge=0, le=1000)
    timeout: float | None = Field(None, gt=0, le=7 * 24 * 3600, description="Time limit in seconds")
    key: str | None = Field(None, min_length=1, max_length=256, description="Ordering key")
    delay: float | None = Field(None, ge=0, le=366 * 86400, description="Run no earlier than this many seconds later")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=256, description="The same key (within its TTL) returns the same task id"
    )


class Submitted(BaseModel):
    id: str
    status: str = "queued"


class BatchSubmitted(BaseModel):
    ids: list[str]
    status: str = "queued"


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None
    reason: str | None = None
    error: str | None = None


class TaskOut(BaseModel):
    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    status: str
    result: Any = None
    error: str | None = None
    attempts: int
    worker: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    max_retries: int | None = None
    timeout: float | None = None
    history: list[AttemptOut] = Field(default_factory=list)
    eta: float | None = Field(None, description="When a delayed task, or its latest retry, is (or was) due.")


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


class WorkerOut(BaseModel):
    id: str
    status: str
    last_heartbeat: float | None
    current_tasks: int
    processed: int
    failed: int
    partitions: list[int]
    concurrency: int
    tasks: list[str]
    started_at: float | None


class TaskType(BaseModel):
    name: str
    signature: str


class Stats(BaseModel):
    counts: dict[str, int]
    workers_alive: int
    throughput: dict[str, float]
    lag: dict[str, int] | None
    lag_total: int | None
