"""The API's side of the audit trail (``taskq.audit``): every action recorded, and ``GET /api/audit``.

A middleware sees each request that changes something (any method but GET/HEAD/OPTIONS under
``/api/``) and, once it is answered, records who (``request.state.caller``, set by the token check
or the sign-in), what (the method and path; the handler's ``request.state.audit`` says more, such
as a bulk action's filter and counts) and the status. Submissions are recorded only when made by
hand in the console (a session cookie): a service submitting thousands a second is not an operator's
action, and its tasks have records of their own. Requests without valid credentials are not
recorded (scanners would flood the trail), failed sign-ins are.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..audit import AuditEntry, AuditLog
from ..errors import TaskqError
from .auth import SAFE_METHODS, Caller, client_address, require_token

log = logging.getLogger("taskq.audit")

SUBMISSIONS = frozenset({("POST", "/api/tasks"), ("POST", "/api/tasks/batch"), ("POST", "/api/workflows")})

router = APIRouter(prefix="/api", tags=["audit"], dependencies=[Depends(require_token)])


def note(request: Request, detail: str) -> None:
    """What a handler adds to its request's audit entry (a filter, counts, a task name; never args)."""
    request.state.audit = detail


class AuditTrail:
    """Records every answered action under /api/ in the audit log (see the module's docstring)."""

    def __init__(self, app: ASGIApp, log: AuditLog) -> None:
        self.app = app
        self.audit = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in SAFE_METHODS
                or not scope.get("path", "").startswith("/api/")):
            await self.app(scope, receive, send)
            return
        recorded = False

        async def watch(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                # Before the answer leaves: the caller's next action cannot be recorded ahead of this one.
                recorded = True
                await self._record(scope, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if not recorded:
                await self._record(scope, 500)

    async def _record(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        found = state.get("caller")
        if not isinstance(found, Caller) or (found.role is None and found.via != "login"):
            return
        method, path = scope["method"], scope["path"]
        if (method, path) in SUBMISSIONS and found.via != "cookie":
            return
        client = scope.get("client")
        entry = AuditEntry(at=time.time(), role=found.role or "-", token=found.token, via=found.via or "-",
                           ip=client[0] if client else "unknown", method=method, path=path, status=status,
                           detail=str(state.get("audit", "")))
        try:
            await run_in_threadpool(self.audit.record, entry)
        except TaskqError as exc:
            log.warning("audit: the entry above is only in this log: %s", exc)


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: str | None = Field(None, description="Pass as ``before`` for older entries; null at the end")


@router.get("/audit", response_model=AuditPage)
def audit_trail(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$", description="An entry's id")] = None,
) -> AuditPage:
    """Who did what through the API, newest first: actions, sign-ins, submissions made in the console."""
    items = request.app.state.audit.entries(limit=limit, before=before)
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)


__all__ = ["AuditTrail", "client_address", "note", "router"]
