"""/api/workflows: start, read, list, cancel and retry chains, groups and chords."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, status

from ..errors import InvalidTask
from ..workflows import WorkflowRecord, from_json
from .audit import note
from .deps import ClientDep
from .schemas import Submitted

router = APIRouter(prefix="/api/workflows", tags=["workflows"])

EXAMPLE = {"chord": [{"task": "add", "args": [1, 2]}, {"task": "add", "args": [3, 4]}],
           "callback": {"task": "tsum"}, "on_failure": "fail"}


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Submitted)
def submit_workflow(request: Request, client: ClientDep,
                    body: Annotated[Any, Body(examples=[EXAMPLE])]) -> Submitted:
    """Start a workflow described as JSON: ``{"task": name, "args", "kwargs", "immutable",
    "max_retries", "timeout"}``, ``{"chain": [...]}``, ``{"group": [...], "on_failure"}`` or
    ``{"chord": [...], "callback": {...}, "on_failure"}`` (on_failure: fail | skip | run), nested freely."""
    try:
        wid = client.submit_workflow(from_json(body), only_known=True)
    except InvalidTask as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    note(request, f"workflow {wid}")
    return Submitted(id=wid, status="running")


@router.get("", response_model=list[WorkflowRecord])
def list_workflows(client: ClientDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[WorkflowRecord]:
    """The newest workflows first, with every node's state."""
    return client.list_workflows(limit=limit)


@router.get("/{workflow_id}", response_model=WorkflowRecord)
def get_workflow(workflow_id: str, client: ClientDep) -> WorkflowRecord:
    """A workflow: its status, result or error, and every node (kind, parent, children, state, task id)."""
    return client.workflow(workflow_id)


@router.post("/{workflow_id}/cancel", response_model=WorkflowRecord)
def cancel_workflow(workflow_id: str, client: ClientDep) -> WorkflowRecord:
    """Nothing more starts; queued and retrying steps are cancelled; running ones finish. 409 unless running."""
    return client.cancel_workflow(workflow_id)


@router.post("/{workflow_id}/retry", response_model=WorkflowRecord)
def retry_workflow(workflow_id: str, client: ClientDep) -> WorkflowRecord:
    """Run a failed workflow again from its failed steps (the ones that succeeded keep their results)."""
    return client.retry_workflow(workflow_id)
