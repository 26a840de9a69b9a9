"""/api/events: Server-Sent Events of task and worker changes, from the capped Redis stream.

Each event's id is its Redis stream id, so a reconnecting EventSource resumes with
``Last-Event-ID`` exactly where it left off (within the stream's cap).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse

from ..settings import Settings
from .deps import SettingsDep, require_token

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_token)])
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
BLOCK_MS = 5000


async def _stream(settings: Settings, request: Request, last_id: str) -> AsyncIterator[dict[str, Any]]:
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    r = aioredis.Redis.from_url(settings.redis_url, password=password, decode_responses=True)
    key = settings.prefix + "events"
    try:
        while not await request.is_disconnected():
            try:
                rows = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]],
                            await r.xread({key: last_id}, count=500, block=BLOCK_MS))
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                yield {"event": "error", "data": orjson.dumps({"detail": "Redis is unreachable"}).decode()}
                await asyncio.sleep(2)
                continue
            for _key, entries in rows:
                for entry_id, fields in entries:
                    last_id = entry_id
                    yield {"id": entry_id, "event": fields.get("type", "task"), "data": orjson.dumps(fields).decode()}
    finally:
        await r.aclose()


@router.get("/events")
async def events(
    request: Request,
    settings: SettingsDep,
    last_event_id: str | None = Header(None),
    since: str | None = Query(None, description="Stream id to start after; default: only new events"),
) -> EventSourceResponse:
    start = last_event_id or since or "$"
    if start != "$" and not _STREAM_ID.match(start):
        raise HTTPException(422, f"event id {start!r} is invalid: expected '<ms>-<seq>' as sent in 'id:'")
    return EventSourceResponse(_stream(settings, request, start), ping=15)
