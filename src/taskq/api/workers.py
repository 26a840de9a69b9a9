"""/api/workers and /api/task-types."""

from __future__ import annotations

from fastapi import APIRouter

from .deps import ClientDep
from .schemas import TaskType, WorkerOut

router = APIRouter(prefix="/api", tags=["workers"])


@router.get("/workers", response_model=list[WorkerOut])
def list_workers(client: ClientDep) -> list[WorkerOut]:
    """Every worker seen in the last day: alive, lost (heartbeat expired) or stopped."""
    return [WorkerOut.model_validate(w.to_dict()) for w in client.store.workers()]


@router.get("/task-types", response_model=list[TaskType])
def task_types(client: ClientDep) -> list[TaskType]:
    """Task names (with signatures) that live workers can run."""
    return [TaskType(name=n, signature=s) for n, s in client.store.task_types().items()]
