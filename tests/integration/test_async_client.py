"""``taskq.AsyncClient`` against real Kafka and Redis, with each Kafka client: submits that return
once Kafka acknowledged them, reads, a wait that follows the event stream, cancel and retry."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskq import AsyncClient, TaskRequest
from taskq.errors import TaskNotFound, TaskStateError, WaitTimeout
from taskq.kafka import ensure_topics
from taskq.settings import Settings
from tests.helpers import Services, WorkerFactory, make_settings


@pytest.mark.both_clients
def test_concurrent_submits_are_acknowledged_recorded_and_run(settings: Settings, start_worker: WorkerFactory) -> None:
    ensure_topics(settings)
    start_worker("w1")

    async def scenario() -> list[int]:
        async with AsyncClient(settings) as client:
            ids = await asyncio.gather(*(client.submit("add", i, 1) for i in range(50)))
            assert len(set(ids)) == 50
            # Acknowledged means recorded: every record is there at once.
            first = await asyncio.gather(*(client.get(t) for t in ids))
            assert all(r.id == t for r, t in zip(first, ids, strict=True))
            done = await asyncio.gather(*(client.wait(t, timeout=60) for t in ids))
            return [r.result for r in done]

    assert asyncio.run(scenario()) == [i + 1 for i in range(50)]


def test_the_event_loop_is_never_blocked_by_a_submit_with_librdkafka(services: Services) -> None:
    """With librdkafka a submit only queues the message on the loop's thread: no pool thread is used
    (kafka-python's enqueue can wait for metadata, so it runs on the client's pool by design)."""
    settings = make_settings(services, kafka_client="confluent")
    ensure_topics(settings)

    async def scenario() -> set[str]:
        async with AsyncClient(settings) as client:
            await client.submit("add", 0, 0)  # the first submit may check Redis' room on the pool
            before = {t.name for t in threading.enumerate()}
            await asyncio.gather(*(client.submit("add", i, 1) for i in range(30)))
            return {t.name for t in threading.enumerate()} - before

    assert not [name for name in asyncio.run(scenario()) if name.startswith("taskq-aio")]


@pytest.mark.both_clients
def test_wait_follows_the_stream_and_times_out_cleanly(settings: Settings, start_worker: WorkerFactory) -> None:
    ensure_topics(settings)

    async def scenario() -> None:
        async with AsyncClient(settings) as client:
            tid = await client.submit("add", 2, 3)
            with pytest.raises(WaitTimeout, match="did not finish within 1s"):
                await client.wait(tid, timeout=1)  # no worker yet: still queued
            waiting = asyncio.create_task(client.wait(tid, timeout=60))
            await asyncio.to_thread(start_worker, "w1")  # the change arrives while wait() listens
            assert (await waiting).result == 5
            with pytest.raises(TaskNotFound):
                await client.get("0" * 32)

    asyncio.run(scenario())


@pytest.mark.both_clients
def test_cancel_retry_options_and_batches(settings: Settings, start_worker: WorkerFactory) -> None:
    ensure_topics(settings)

    async def scenario() -> None:
        async with AsyncClient(settings) as client:
            later = await client.submit("add", 1, 1, _delay=600)
            assert (await client.get(later)).status.value in ("queued", "delayed")
            assert (await client.cancel(later)).status.value == "cancelled"
            with pytest.raises(TaskStateError):
                await client.cancel(later)
            same = await client.submit("add", 3, 3, _idempotency_key="once")
            assert await client.submit("add", 3, 3, _idempotency_key="once") == same
            ids = await client.submit_many([TaskRequest("add", (i, i)) for i in range(5)])
            await asyncio.to_thread(start_worker, "w1")
            assert [r.result for r in await asyncio.gather(*(client.wait(t) for t in ids))] == [0, 2, 4, 6, 8]
            again = await client.retry(later)
            assert (await client.wait(again.id, timeout=60)).result == 2

    asyncio.run(scenario())
