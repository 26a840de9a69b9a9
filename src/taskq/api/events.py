"""/api/events: Server-Sent Events of task and worker changes (``Client.events``).

Each event's SSE id is its Redis stream id, so a reconnecting EventSource resumes with
``Last-Event-ID`` exactly where it left off (within the stream's cap); ``ready`` and ``error``
events carry no id (see ``taskq.events``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from ..events import Event, check_start
from .deps import ClientDep, require_token

# Seconds a caller turned away for want of a stream slot waits; EventSource itself retries after ~3 s.
RETRY_AFTER = 5

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_token)])


def _sse(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event.kind, "data": orjson.dumps(event.data).decode()}
    if event.id is not None:
        out["id"] = event.id
    return out


async def _stream(events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
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
    return _Stream(_stream(hub.subscribe(start)), hub.release)
