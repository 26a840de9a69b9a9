"""/api/events: Server-Sent Events of task and worker changes (``Client.events``).

Each event's SSE id is its Redis stream id, so a reconnecting EventSource resumes with
``Last-Event-ID`` exactly where it left off (within the stream's cap); ``ready`` and ``error``
events carry no id (see ``taskq.events``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from ..errors import TaskqError
from ..events import Event, check_start, never
from .auth import SessionGrant, revoked
from .deps import ClientDep, require_token

# Seconds a caller turned away for want of a stream slot waits; EventSource itself retries after ~3 s.
RETRY_AFTER = 5

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_token)])


def _sse(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event.kind, "data": orjson.dumps(event.data).decode()}
    if event.id is not None:
        out["id"] = event.id
    return out


async def _stream(events: AsyncGenerator[Event, None]) -> AsyncIterator[dict[str, Any]]:
    async with contextlib.aclosing(events):  # the hub forgets this subscriber at once when the client goes
        async for event in events:
            yield _sse(event)


class _Stream(EventSourceResponse):
    """An event stream that gives its slot back when it ends, however it ends."""

    def __init__(self, events: AsyncIterator[dict[str, Any]], release: Callable[[], None]) -> None:
        super().__init__(events, ping=15)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@router.get("/events", responses={503: {"description": "Every event stream slot of this API process is taken"}})
async def events(
    request: Request,
    client: ClientDep,
    last_event_id: str | None = Header(None),
    since: str | None = Query(None, description="Stream id to start after; default: only new events"),
) -> EventSourceResponse:
    start = check_start(last_event_id or since or "$")  # InvalidTask: 422
    hub = client.event_hub()
    if not hub.reserve():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"this API process serves {hub.max_streams} event streams already (TASKQ_API_MAX_STREAMS); "
            f"try again shortly",
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    # No stop() here: sse_starlette sees the client leave and cancels the stream at once (a
    # stop=request.is_disconnected would take the disconnect message from it and end the stream
    # only at the next idle timeout).
    found = request.state.caller
    stop = _until_session_ends(request, found.session) if found.session is not None else never
    return _Stream(_stream(cast(AsyncGenerator[Event, None], hub.subscribe(start, stop=stop))), hub.release)


# How often a stream signed in with a session cookie looks whether that session was signed out.
SESSION_RECHECK = 30.0


def _until_session_ends(request: Request, grant: SessionGrant) -> Callable[[], Awaitable[bool]]:
    """A stream's stop: its session expired, or was signed out (asked at most every 30 s), so a
    copied cookie or a tab left open does not keep receiving events after either."""
    checked = time.monotonic()

    async def stop() -> bool:
        nonlocal checked
        if time.time() >= grant.expires:
            return True
        if time.monotonic() - checked < SESSION_RECHECK:
            return False
        checked = time.monotonic()
        try:
            return await revoked(request, grant.sid)
        except TaskqError:
            return False  # Redis away: the stream itself says so; the session is asked again later

    return stop
