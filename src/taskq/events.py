"""The live event stream of task and worker changes, read from the capped Redis stream.

Each event's id is its Redis stream id, so a reader that reconnects resumes exactly where it left
off (within the stream's cap). Besides ``task`` and ``worker`` events the stream yields ``ready``
once it is subscribed (a reader that waits for it knows every later change reaches it) and again
when Redis is back after an outage, and one ``error`` per outage. A blocking read that returns
nothing is just an idle stream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as aioredis

from .errors import InvalidTask

STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
BLOCK_MS = 5000
# The socket waits longer than a blocking read, so only a dead connection times out.
SOCKET_TIMEOUT = BLOCK_MS / 1000 + 5
RETRY_MAX = 5.0

Rows = list[tuple[str, list[tuple[str, dict[str, str]]]]]


@dataclass(frozen=True, slots=True)
class Event:
    """One change: ``kind`` is task | worker | ready | error; ``id`` is the stream id (None for ready/error)."""

    kind: str
    data: dict[str, str] = field(default_factory=dict)
    id: str | None = None


def check_start(start: str) -> str:
    """``$`` (only new events) or a stream id as sent in an event's id; else ``InvalidTask``."""
    if start != "$" and not is_stream_id(start):
        raise InvalidTask(f"event id {start!r} is invalid: expected '<ms>-<seq>' as sent in 'id:'")
    return start


def is_stream_id(value: str) -> bool:
    """Whether ``value`` is a Redis stream id: two numbers below 2**64 (Redis refuses larger ones)."""
    return bool(STREAM_ID.match(value)) and all(int(part) < 2**64 for part in value.split("-"))


LAST_STREAM_ID = f"{2**64 - 1}-{2**64 - 1}"  # nothing can come after it


async def _resolve(r: aioredis.Redis, key: str, start: str) -> str:
    """``$`` as a concrete id: each later read continues from it, so nothing falls between two reads."""
    if start != "$":
        return start
    last = cast(list[tuple[str, dict[str, str]]], await r.xrevrange(key, count=1))
    return last[0][0] if last else "0-0"


async def never() -> bool:
    return False


async def stream(r: aioredis.Redis, key: str, start: str = "$", *,
                 stop: Callable[[], Awaitable[bool]] = never, block_ms: int = BLOCK_MS) -> AsyncIterator[Event]:
    """Events after ``start`` until ``stop()`` says so; Redis outages are reported, then waited out."""
    check_start(start)
    last_id: str | None = None
    down = False
    backoff = 0.5
    while not await stop():
        try:
            if last_id is None:
                last_id = await _resolve(r, key, start)
                yield Event("ready", {"detail": "subscribed", "last_id": last_id})
            rows = cast(Rows, await r.xread({key: last_id}, count=500, block=block_ms))
            if down:
                down, backoff = False, 0.5
                yield Event("ready", {"detail": "Redis is reachable again", "last_id": last_id})
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            if not down:
                down = True
                yield Event("error", {"detail": "Redis is unreachable; the stream resumes when it is back"})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX)
            continue
        for _key, entries in rows:
            for entry_id, fields in entries:
                last_id = entry_id
                yield Event(fields.get("type", "task"), fields, entry_id)
