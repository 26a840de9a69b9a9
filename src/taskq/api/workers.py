"""/api/workers and /api/task-types: list them, quiet or resume a worker, pause or resume a task type."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..models import TaskType, TypeMetrics, WorkerInfo
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


WINDOWS = {"5m": 300.0, "1h": 3600.0, "24h": 86400.0, "7d": 604800.0}


@router.get("/task-types/metrics", response_model=list[TypeMetrics])
def type_metrics(client: ClientDep, window: Annotated[
        Literal["5m", "1h", "24h", "7d"], Query(description="How far back: 5m, 1h, 24h or 7d")] = "1h",
) -> list[TypeMetrics]:
    """Per task type over the window: finished runs by outcome, failure rate (failed and dead over
    the runs that ended), and p50/p95/p99/mean of run time and of wait time (submit to start);
    each percentile is within ``relative_error`` (2 %) of the true value, the mean is exact."""
    return client.type_metrics(window=WINDOWS[window])


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
