"""The event hub's subscriber loop ends when its caller gives up, whatever arrives at that moment."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
import redis.asyncio as aioredis

from taskq.eventhub import EventHub, _Subscriber
from taskq.events import Event, never


def test_a_cancellation_that_arrives_with_an_event_ends_the_stream() -> None:
    """AsyncClient.wait gives up through a cancellation; if the queue handed over an event in the
    same turn of the loop, Python 3.11's wait_for returned the event and the stream went on for ever
    (a test then hung for its whole 300 s instead of raising WaitTimeout after 60 s)."""

    async def scenario() -> list[Event]:
        hub = EventHub(cast(aioredis.Redis, None), "events", max_streams=1, block_ms=10_000)
        hub.last_id = "1-0"  # the reader is running: the subscriber's loop needs nothing else
        subscriber = _Subscriber(10)
        got: list[Event] = []

        async def follow() -> None:
            async for event in hub._follow(subscriber, "$", never):
                got.append(event)

        task = asyncio.get_running_loop().create_task(follow())
        while not got:  # its `ready`, then it waits on the queue
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        subscriber.put(Event("task", {"id": "t"}, "2-0"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        return got

    assert [e.kind for e in asyncio.run(scenario())] == ["ready"]
