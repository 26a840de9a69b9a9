"""One Redis reader per process, fanned out to every live event stream of the HTTP API.

A stream of its own per caller would hold a blocking Redis connection each, so a read-only caller
could open streams until Redis refuses connections (``maxclients``) for the workers too. Here one
reader follows the stream's tip and hands each event to every subscriber's bounded queue. A
subscriber that resumes from an older id (``Last-Event-ID``), or that fell behind because its
queue filled, catches up with short non-blocking ``XRANGE`` reads and then takes the live events
it has not seen: nobody waits for the slowest, and nothing within the stream's cap is skipped.
The number of streams is capped per process; past the cap a caller is told to come back later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import redis.asyncio as aioredis

from .events import BLOCK_MS, LAST_STREAM_ID, RETRY_MAX, Event, check_start, never, stream

log = logging.getLogger("taskq.api")

CATCH_UP_BATCH = 500
QUEUE_MAX = 2000  # live events a subscriber may have unread before it catches up from Redis instead
UNREACHABLE = Event("error", {"detail": "Redis is unreachable; the stream resumes when it is back"})


def stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class _Subscriber:
    def __init__(self, queue_max: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(queue_max)
        self.behind = False  # events were dropped: catch up from Redis before taking more

    def put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.behind = True


class EventHub:
    """The shared reader, its subscribers, and the cap on how many streams are open."""

    def __init__(self, r: aioredis.Redis, key: str, *, max_streams: int, queue_max: int = QUEUE_MAX,
                 block_ms: int = BLOCK_MS) -> None:
        self._r = r
        self._key = key
        self.max_streams = max_streams
        self._queue_max = queue_max
        self._block_ms = block_ms
        self._subscribers: set[_Subscriber] = set()
        self._reader: asyncio.Task[None] | None = None
        self.open_streams = 0
        self.last_id: str | None = None  # the newest id handed to subscribers; None until the reader started
        self.down = False

    def reserve(self) -> bool:
        """Take a stream slot; False when all ``max_streams`` are taken. ``release`` gives it back."""
        if self.open_streams >= self.max_streams:
            return False
        self.open_streams += 1
        return True

    def release(self) -> None:
        self.open_streams = max(0, self.open_streams - 1)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    def _start(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="taskq-event-hub")

    async def _read(self) -> None:
        backoff = 0.5
        failed = False
        while True:
            try:
                async for event in stream(self._r, self._key, self.last_id or "$", block_ms=self._block_ms):
                    backoff = 0.5
                    if failed and event.kind == "ready":
                        # Started again after a failure the subscribers were told of: say it is over.
                        event = Event("ready", {**event.data, "detail": "Redis is reachable again"})
                    failed = False
                    self._note(event)
                    for subscriber in list(self._subscribers):
                        subscriber.put(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Whatever Redis answered, the reader must outlive it: the streams depend on it.
                log.exception("the event stream reader failed; it starts again in %.1f s", backoff)
                failed = self.down = True
                for subscriber in list(self._subscribers):
                    subscriber.put(UNREACHABLE)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    def _note(self, event: Event) -> None:
        if event.id is not None:
            self.last_id = event.id
        elif event.kind == "ready":
            self.last_id = event.data.get("last_id", self.last_id)
            self.down = False
        elif event.kind == "error":
            self.down = True

    async def subscribe(self, start: str = "$", *,
                        stop: Callable[[], Awaitable[bool]] = never) -> AsyncIterator[Event]:
        """Events after ``start`` (``$``: only new ones) until ``stop()`` says so, with the same
        ``ready``/``error`` events as ``taskq.events.stream``."""
        check_start(start)
        subscriber = _Subscriber(self._queue_max)
        self._subscribers.add(subscriber)  # before anything is read: every later event reaches it
        self._start()
        try:
            async for event in self._follow(subscriber, start, stop):
                yield event
        finally:
            self._subscribers.discard(subscriber)

    async def _follow(self, subscriber: _Subscriber, start: str,
                      stop: Callable[[], Awaitable[bool]]) -> AsyncIterator[Event]:
        last: str | None = None
        if start != "$":
            last = start
            yield Event("ready", {"detail": "subscribed", "last_id": last})
            subscriber.behind = True  # everything after `start` comes from Redis first
        elif self.last_id is not None:
            last = self.last_id
            yield UNREACHABLE if self.down else Event("ready", {"detail": "subscribed", "last_id": last})
        # else: the reader's own first `ready` (or `error`) reaches this subscriber through its queue.
        while not await stop():
            if subscriber.behind and last is not None:
                async for event in self._catch_up(subscriber, last, stop):
                    if event.id is not None:
                        last = event.id
                    yield event
                continue
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
                # queue hands over an event, so a caller's own timeout (AsyncClient.wait) never ended.
                async with asyncio.timeout(self._block_ms / 1000):
                    event = await subscriber.queue.get()
            except TimeoutError:
                continue  # idle: look at stop() again
            if event.id is not None:
                if last is not None and stream_id(event.id) <= stream_id(last):
                    continue  # already sent while catching up
                last = event.id
            elif event.kind == "ready":
                if last is None:
                    last = event.data.get("last_id")
                elif event.data.get("detail") != "subscribed":
                    event = Event("ready", {**event.data, "last_id": last})
                else:
                    continue  # the reader's own start, after this subscriber had its `ready`
            yield event

    async def _catch_up(self, subscriber: _Subscriber, last: str,
                        stop: Callable[[], Awaitable[bool]]) -> AsyncIterator[Event]:
        """Everything after ``last`` from Redis, in short reads; then the subscriber is current."""
        down = False
        backoff = 0.5
        # Live events queued so far are older than what the reads below return, or repeat them.
        _drain(subscriber.queue)
        subscriber.behind = False
        if last == LAST_STREAM_ID:
            return  # Redis refuses a range that starts after the last possible id
        while not await stop():
            try:
                rows = cast(list[tuple[str, dict[str, str]]],
                            await self._r.xrange(self._key, min=f"({last}", count=CATCH_UP_BATCH))
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                if not down:
                    down = True
                    yield UNREACHABLE
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)
                continue
            if down:
                down = False
                yield Event("ready", {"detail": "Redis is reachable again", "last_id": last})
            for entry_id, fields in rows:
                last = entry_id
                yield Event(fields.get("type", "task"), fields, entry_id)
            if len(rows) < CATCH_UP_BATCH:
                return


def _drain(queue: asyncio.Queue[Event]) -> None:
    while not queue.empty():
        queue.get_nowait()
