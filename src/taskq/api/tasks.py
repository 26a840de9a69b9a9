"""/api/tasks: submit, read, list, cancel."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, status
from starlette.concurrency import run_in_threadpool

from .. import limits, tracing
from ..aio import settled
from ..client import TaskRequest
from ..errors import InvalidTask
from ..models import TaskRecord, TaskState
from ..query import TaskFilter
from .audit import note
from .deps import ClientDep
from .schemas import BatchSubmitted, BulkBody, BulkDone, PurgeBody, SubmitBody, Submitted, TaskName, TaskNames, TaskPage

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
MAX_BATCH = limits.BATCH_MAX


def _trace(request: Request) -> str | None:
    """The parent of the task's spans: the current span, else the caller's ``traceparent`` header.

    With a tracer provider FastAPI's own request span (a child of the header's context) is current;
    without one the header passes on as it is. An invalid header is ignored (a new trace, as W3C says)."""
    return tracing.current_traceparent() or tracing.valid_traceparent(request.headers.get("traceparent"))


def _request(body: SubmitBody, trace: str | None = None) -> TaskRequest:
    return TaskRequest(body.task, body.args, body.kwargs, max_retries=body.max_retries, timeout=body.timeout,
                       key=body.key, delay=body.delay, idempotency_key=body.idempotency_key,
                       priority=body.priority, rate_key=body.rate_key, concurrency_key=body.concurrency_key,
                       trace=trace)


def _submit(request: Request, client: ClientDep, bodies: list[SubmitBody]) -> list[str]:
    try:
        # None while no live worker advertises its tasks: accept, the worker decides.
        known = client.known_tasks([b.task for b in bodies])
        trace = _trace(request)
        ids = client.submit_many([_request(b, trace) for b in bodies], known_tasks=known)
    except InvalidTask as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    for b in bodies:
        request.app.state.metrics.submitted(b.task)
    return ids


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Submitted,
             responses={503: {"description": "Kafka or Redis is down, or the API is at its in-flight limit "
                                             "(then with Retry-After)"}})
async def submit_task(body: SubmitBody, request: Request, client: ClientDep) -> Submitted:
    """Queue a task. Answers only once Kafka has acknowledged it (503 if Kafka is down).

    No thread waits for Kafka: the message joins the producer's batches and the request is resumed
    by its acknowledgement, after the record is written (in pipelines, with the others acked then).
    Past ``TASKQ_API_MAX_INFLIGHT`` submissions waiting at once, it answers 503 with Retry-After at
    once instead of queueing."""
    if body.delay or body.idempotency_key:
        # These write Redis before producing (a due entry, a reserved key): the threadpool path.
        tid = (await run_in_threadpool(_submit, request, client, [body]))[0]
        note(request, f"task {body.task}: {tid}")
        return Submitted(id=tid)
    state = request.app.state
    if state.inflight >= state.settings.api_max_inflight:
        state.metrics.refused()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the API is at its limit of {state.settings.api_max_inflight} submissions waiting "
                            "for Kafka; retry shortly", headers={"Retry-After": "1"})
    if client.known_tasks_stale([body.task]):
        await run_in_threadpool(client.known_tasks, [body.task])
    if client.store.memory_check_due():
        await run_in_threadpool(client.store.check_room)  # 503 if Redis is full (cached for a second)
    req, known = _request(body, _trace(request)), client.known_tasks([body.task])
    try:
        if client.enqueue_blocks:
            sub = await run_in_threadpool(lambda: client.submit_request_nowait(req, known_tasks=known))
        else:
            sub = client.submit_request_nowait(req, known_tasks=known)
    except InvalidTask as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    state.inflight += 1
    try:
        await settled(sub, timeout=state.settings.submit_timeout + 5)
    finally:
        state.inflight -= 1
    sub.result(0)  # raises SubmitFailed (503) if Kafka refused it; nothing of it was recorded
    state.metrics.submitted(body.task)
    note(request, f"task {body.task}: {sub.id}")
    return Submitted(id=sub.id)


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchSubmitted)
def submit_batch(bodies: list[SubmitBody], request: Request, client: ClientDep) -> BatchSubmitted:
    """Queue up to 1000 tasks in one request (all or none)."""
    if not bodies:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the batch is empty")
    if len(bodies) > MAX_BATCH:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"a batch holds at most {MAX_BATCH} tasks, got {len(bodies)}")
    ids = _submit(request, client, bodies)
    names = sorted({b.task for b in bodies})
    note(request, f"{len(ids)} tasks ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): "
                  f"{ids[0]} .. {ids[-1]}")
    return BatchSubmitted(ids=ids)


@router.get("", response_model=TaskPage)
def list_tasks(
    client: ClientDep,
    status_: Annotated[TaskState | None, Query(alias="status")] = None,
    task: Annotated[str | None, Query(max_length=limits.TASK_NAME_MAX)] = None,
    task_prefix: Annotated[str | None, Query(max_length=limits.TASK_NAME_MAX)] = None,
    worker: Annotated[str | None, Query(max_length=limits.TASK_NAME_MAX)] = None,
    since: Annotated[float | None, Query(ge=0, description="Created at or after (epoch seconds)")] = None,
    until: Annotated[float | None, Query(ge=0, description="Created at or before (epoch seconds)")] = None,
    q: Annotated[str | None, Query(max_length=200, description="In the args, kwargs, error or id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, pattern=r"^b?[0-9eE.+-]+:")] = None,
) -> TaskPage:
    """Tasks newest first that match every filter given, with the filter's total; pass
    ``next_cursor`` or ``prev_cursor`` back as ``cursor`` for the next or previous page."""
    filt = TaskFilter(status=status_, task=task, task_prefix=task_prefix, worker=worker, since=since, until=until,
                      q=q)
    page = client.list_tasks(filt, limit=limit, cursor=cursor)
    return TaskPage(items=page.items, next_cursor=page.next_cursor, prev_cursor=page.prev_cursor,
                    total=page.total, total_exact=page.total_exact)


@router.get("/names", response_model=TaskNames)
def task_names(
    client: ClientDep, prefix: Annotated[str | None, Query(max_length=limits.TASK_NAME_MAX)] = None,
) -> TaskNames:
    """Every task name that has tasks in Redis, with its task count (a filter's dropdown)."""
    return TaskNames(names=[TaskName(name=n, total=c) for n, c in client.task_names(prefix=prefix).items()])


# Declared before /{task_id}/...: "bulk" is never taken for a task id here.
@router.post("/bulk/retry", response_model=BulkDone)
def bulk_retry(body: BulkBody, request: Request, client: ClientDep) -> BulkDone:
    """Retry every failed or dead task the filter matches (``status``: failed, dead or cancelled)."""
    return _bulk_noted(request, body, BulkDone(**client.retry_all(body.filter(), dry_run=body.dry_run).to_dict()))


@router.post("/bulk/cancel", response_model=BulkDone)
def bulk_cancel(body: BulkBody, request: Request, client: ClientDep) -> BulkDone:
    """Cancel every queued or retrying task the filter matches."""
    return _bulk_noted(request, body, BulkDone(**client.cancel_all(body.filter(), dry_run=body.dry_run).to_dict()))


@router.post("/bulk/purge", response_model=BulkDone)
def bulk_purge(body: PurgeBody, request: Request, client: ClientDep) -> BulkDone:
    """Delete the finished tasks the filter matches that finished more than ``older_than`` seconds ago."""
    done = client.purge(body.filter(), older_than=body.older_than, dry_run=body.dry_run).to_dict()
    return _bulk_noted(request, body, BulkDone(**done))


def _bulk_noted(request: Request, body: BulkBody, done: BulkDone) -> BulkDone:
    filt = body.model_dump(exclude_none=True, exclude={"dry_run"})
    if "q" in filt:  # a search matches the args: what was searched for stays out of the trail
        filt["q"] = f"<a search of {len(filt['q'])} characters>"
    note(request, f"filter {orjson.dumps(filt).decode()}: matched {done.matched}, done {done.done}, "
                  f"skipped {done.skipped}" + (" (dry run)" if done.dry_run else "")
                  + (" (capped: more may match)" if done.capped else ""))
    return done


@router.get("/{task_id}", response_model=TaskRecord)
def get_task(task_id: str, client: ClientDep) -> TaskRecord:
    return client.get(task_id)


@router.post("/{task_id}/cancel", response_model=TaskRecord)
def cancel_task(task_id: str, client: ClientDep) -> TaskRecord:
    """Cancel a queued or retrying task (409 for any other state)."""
    return client.cancel(task_id)


@router.post("/{task_id}/retry", response_model=TaskRecord)
def retry_task(task_id: str, client: ClientDep) -> TaskRecord:
    """Queue a failed, dead or cancelled task again (409 for any other state)."""
    return client.retry(task_id)
