"""/api/events: Server-Sent Events of task and worker changes, from the capped Redis stream.

Each event's id is its Redis stream id, so a reconnecting EventSource resumes with
``Last-Event-ID`` exactly where it left off (within the stream's cap).

Besides ``task`` and ``worker`` events the stream sends ``ready`` once it is subscribed (a client
that waits for it knows every later change reaches it) and again when Redis is back after an
outage, and one ``error`` per outage. A blocking read that returns nothing is just an idle stream.
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
# The socket waits longer than a blocking read, so only a dead connection times out.
SOCKET_TIMEOUT = BLOCK_MS / 1000 + 5
RETRY_MAX = 5.0

Rows = list[tuple[str, list[tuple[str, dict[str, str]]]]]


def _event(kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"event": kind, "data": orjson.dumps({"detail": detail, **extra}).decode()}


async def _resolve(r: aioredis.Redis, key: str, start: str) -> str:
    """``$`` as a concrete id: each later read continues from it, so nothing falls between two reads."""
    if start != "$":
        return start
    last = cast(list[tuple[str, dict[str, str]]], await r.xrevrange(key, count=1))
    return last[0][0] if last else "0-0"


async def _stream(settings: Settings, request: Request, start: str) -> AsyncIterator[dict[str, Any]]:
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    r = aioredis.Redis.from_url(settings.redis_url, password=password, decode_responses=True,
                                socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=5)
    key = settings.prefix + "events"
    last_id: str | None = None
    down = False
    backoff = 0.5
    try:
        while not await request.is_disconnected():
            try:
                if last_id is None:
                    last_id = await _resolve(r, key, start)
                    yield _event("ready", "subscribed", last_id=last_id)
                rows = cast(Rows, await r.xread({key: last_id}, count=500, block=BLOCK_MS))
                if down:
                    down, backoff = False, 0.5
                    yield _event("ready", "Redis is reachable again", last_id=last_id)
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                if not down:
                    down = True
                    yield _event("error", "Redis is unreachable; the stream resumes when it is back")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)
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
