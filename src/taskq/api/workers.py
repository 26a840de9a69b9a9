"""/api/workers and /api/task-types: list them, quiet or resume a worker, pause or resume a task type."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..models import TaskType, WorkerInfo
from .deps import ClientDep

router = APIRouter(prefix="/api", tags=["workers"])


@router.get("/workers", response_model=list[WorkerInfo])
def list_workers(client: ClientDep) -> list[WorkerInfo]:
    """Every worker seen in the last day: alive, lost (heartbeat expired) or stopped."""
    return client.workers()


@router.get("/task-types", response_model=list[TaskType])
def task_types(client: ClientDep) -> list[TaskType]:
    """Tasks that live workers can run: name, signature text, and each parameter (name, kind, type, default)."""
    return list(client.task_types().values())


@router.post("/workers/{worker_id}/quiet", response_model=WorkerInfo)
def quiet_worker(worker_id: str, client: ClientDep) -> WorkerInfo:
    """Stop the worker taking new tasks: it finishes its running ones and hands its partitions to the
    others within about a second (what to do before a deploy). 404 for an unknown worker."""
    return client.quiet_worker(worker_id, quiet=True)


@router.post("/workers/{worker_id}/resume", response_model=WorkerInfo)
def resume_worker(worker_id: str, client: ClientDep) -> WorkerInfo:
    """Let a quiet worker take tasks again (it rejoins the consumer group)."""
    return client.quiet_worker(worker_id, quiet=False)


@router.post("/task-types/{task}/pause")
def pause_task_type(task: str, client: ClientDep) -> dict[str, Any]:
    """Workers stop starting tasks of this type, cluster-wide; they are kept and run in order once resumed."""
    return client.pause_task_type(task)


@router.post("/task-types/{task}/resume")
def resume_task_type(task: str, client: ClientDep) -> dict[str, Any]:
    """Start the type again: its held tasks are produced oldest first; ``released`` says how many."""
    return client.resume_task_type(task)
