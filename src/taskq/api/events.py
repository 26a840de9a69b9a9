"""/api/events: Server-Sent Events of task and worker changes (``Client.events``).

Each event's SSE id is its Redis stream id, so a reconnecting EventSource resumes with
``Last-Event-ID`` exactly where it left off (within the stream's cap); ``ready`` and ``error``
events carry no id (see ``taskq.events``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse

from ..events import Event, check_start
from .deps import ClientDep, require_token

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_token)])


def _sse(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event.kind, "data": orjson.dumps(event.data).decode()}
    if event.id is not None:
        out["id"] = event.id
    return out


async def _stream(events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        yield _sse(event)


@router.get("/events")
async def events(
    request: Request,
    client: ClientDep,
    last_event_id: str | None = Header(None),
    since: str | None = Query(None, description="Stream id to start after; default: only new events"),
) -> EventSourceResponse:
    start = check_start(last_event_id or since or "$")  # InvalidTask: 422
    return EventSourceResponse(_stream(client.events(start, stop=request.is_disconnected)), ping=15)
