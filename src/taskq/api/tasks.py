"""/api/tasks: submit, read, list, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from ..client import TaskRequest
from ..errors import InvalidTask
from ..models import TaskRecord, TaskState
from .deps import ClientDep
from .schemas import BatchSubmitted, SubmitBody, Submitted, TaskOut, TaskPage

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
MAX_BATCH = 1000


def _request(body: SubmitBody) -> TaskRequest:
    return TaskRequest(body.task, body.args, body.kwargs, max_retries=body.max_retries, timeout=body.timeout,
                       key=body.key, delay=body.delay, idempotency_key=body.idempotency_key)


def _out(rec: TaskRecord) -> TaskOut:
    return TaskOut.model_validate(rec.to_dict())


def _submit(request: Request, client: ClientDep, bodies: list[SubmitBody]) -> list[str]:
    try:
        # None while no live worker advertises its tasks: accept, the worker decides.
        known = client.known_tasks([b.task for b in bodies])
        ids = client.submit_many([_request(b) for b in bodies], known_tasks=known)
    except InvalidTask as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    for b in bodies:
        request.app.state.metrics.submitted(b.task)
    return ids


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Submitted)
def submit_task(body: SubmitBody, request: Request, client: ClientDep) -> Submitted:
    """Queue a task. Answers only once Kafka has acknowledged it (503 if Kafka is down)."""
    return Submitted(id=_submit(request, client, [body])[0])


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchSubmitted)
def submit_batch(bodies: list[SubmitBody], request: Request, client: ClientDep) -> BatchSubmitted:
    """Queue up to 1000 tasks in one request (all or none)."""
    if not bodies:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the batch is empty")
    if len(bodies) > MAX_BATCH:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"a batch holds at most {MAX_BATCH} tasks, got {len(bodies)}")
    return BatchSubmitted(ids=_submit(request, client, bodies))


@router.get("", response_model=TaskPage)
def list_tasks(
    client: ClientDep,
    status_: Annotated[TaskState | None, Query(alias="status")] = None,
    task: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=300, pattern=r"^[0-9eE.+-]+:[0-9a-zA-Z_-]*$")] = None,
) -> TaskPage:
    """Tasks newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    page = client.store.list_tasks(status=status_, task=task, limit=limit, cursor=cursor)
    return TaskPage(items=[_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{task_id}", response_model=TaskOut)
def get_task(task_id: str, client: ClientDep) -> TaskOut:
    return _out(client.get(task_id))


@router.post("/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: str, client: ClientDep) -> TaskOut:
    """Cancel a queued or retrying task (409 for any other state)."""
    return _out(client.cancel(task_id))


@router.post("/{task_id}/retry", response_model=TaskOut)
def retry_task(task_id: str, client: ClientDep) -> TaskOut:
    """Queue a failed, dead or cancelled task again (409 for any other state)."""
    return _out(client.retry(task_id))
