"""/api/workers and /api/task-types."""

from __future__ import annotations

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
