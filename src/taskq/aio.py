"""``AsyncClient``: the SDK for asyncio applications (FastAPI, Starlette, aiohttp, async Django).

``await client.submit(...)`` returns once Kafka has acknowledged the task and its record is
written, the same guarantee as ``Client.submit``, without blocking the event loop: with
librdkafka the message only joins the producer's queue on the loop, and the acknowledgement
(delivered on the producer's thread) resumes the coroutine through ``call_soon_threadsafe``.
Reads go through redis' asyncio client; ``wait`` follows the event stream instead of polling.
What has no non-blocking path yet (kafka-python's enqueue, which can wait for metadata; an
idempotency key or a delay, which write Redis first; cancel, retry, workflows, schedules) runs on
a small pool of threads shared by every call (``threads``), never a thread per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from . import events
from .client import Client, TaskRequest
from .errors import SubmitFailed, TaskNotFound, WaitTimeout
from .eventhub import EventHub
from .models import TaskRecord
from .settings import Settings
from .store import translate_errors
from .submitter import Submission
from .workflows import Node, WorkflowRecord

T = TypeVar("T")


class AsyncClient:
    """Submit and follow tasks from asyncio code.

    >>> async with AsyncClient(Settings()) as client:
    ...     tid = await client.submit("add", 1, 2)
    ...     record = await client.wait(tid, timeout=30)

    One instance per process (e.g. owned by a FastAPI lifespan) serves every request concurrently.
    """

    def __init__(self, settings: Settings | None = None, *, threads: int = 4) -> None:
        self.settings = settings or Settings()
        self._client = Client(self.settings)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="taskq-aio")
        self._connecting = asyncio.Lock()
        self._connected = False
        self._room_check: asyncio.Future[None] | None = None
        # Every wait() shares one reader of the event stream (not a blocking connection each).
        self._hub: EventHub | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    # --- submitting ---------------------------------------------------------------------------------
    async def submit(self, task: str, *args: Any, _max_retries: int | None = None, _timeout: float | None = None,
                     _key: str | None = None, _delay: float | None = None, _idempotency_key: str | None = None,
                     _priority: str = "normal", _rate_key: str | None = None, _concurrency_key: str | None = None,
                     **kwargs: Any) -> str:
        """Submit one task; returns its id once Kafka has acknowledged it (options as ``Client.submit``)."""
        return await self.submit_request(TaskRequest(
            task, args, kwargs, max_retries=_max_retries, timeout=_timeout, key=_key, delay=_delay,
            idempotency_key=_idempotency_key, priority=_priority, rate_key=_rate_key,
            concurrency_key=_concurrency_key))

    async def _connect(self) -> None:
        """Make the producer and the submit pipeline once, on the pool (they connect to Kafka), before
        concurrent submits could race to make several."""
        if self._connected:
            return
        async with self._connecting:
            if not self._connected:
                await self._blocking(lambda: self._client.pipeline)
                self._connected = True

    async def _check_room(self) -> None:
        """Ask Redis whether it has room (at most once a second), one check at a time: concurrent
        submits that find the check due share it instead of each taking a pool thread."""
        if self._room_check is None or self._room_check.done():
            self._room_check = asyncio.ensure_future(self._blocking(self._client.store.check_room))
        await asyncio.shield(self._room_check)

    async def submit_request(self, req: TaskRequest) -> str:
        """``submit`` for a prepared ``TaskRequest``."""
        await self._connect()
        client = self._client
        if client.store.memory_check_due():
            await self._check_room()
        if req.delay or req.idempotency_key or client.enqueue_blocks:
            sub = await self._blocking(client.submit_request_nowait, req)
        else:
            sub = client.submit_request_nowait(req)  # queues the message; the room check is cached
        await settled(sub, timeout=self.settings.submit_timeout + 5)
        return sub.result(0)  # SubmitFailed if Kafka refused it: nothing of it was recorded

    async def submit_many(self, requests: Sequence[TaskRequest]) -> list[str]:
        """Submit tasks all or none (``Client.submit_many``)."""
        await self._connect()
        return await self._blocking(self._client.submit_many, requests)

    async def submit_workflow(self, workflow: Node) -> str:
        """Start a workflow (``chain``, ``group``, ``chord``); returns its id."""
        return str(await self._blocking(self._client.submit_workflow, workflow))

    # --- reading ------------------------------------------------------------------------------------
    async def get(self, task_id: str) -> TaskRecord:
        """A task's record (``TaskNotFound`` if there is none)."""
        store = self._client.store
        with translate_errors():
            h = cast(dict[str, str], await store.async_redis().hgetall(store.key("task", task_id)))
        if not h:
            raise TaskNotFound(task_id)
        return TaskRecord.from_hash(h)

    async def wait(self, task_id: str, *, timeout: float = 60.0) -> TaskRecord:
        """The task's record once it is terminal; ``WaitTimeout`` after ``timeout`` seconds.

        Follows the event stream: subscribed first, then the record is read, and read again on
        each of the task's changes (and when Redis is back after an outage), so no change falls
        between a read and the next."""
        store = self._client.store
        if self._hub is None:
            self._hub = EventHub(store.async_redis(), store.key("events"), max_streams=2**31)
        hub = self._hub

        async def follow() -> TaskRecord:
            stream = cast(AsyncGenerator[events.Event, None], hub.subscribe("$"))
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if event.kind == "task" and event.data.get("id") != task_id:
                        continue
                    if event.kind not in ("ready", "task"):
                        continue
                    try:
                        rec = await self.get(task_id)
                    except TaskNotFound:
                        continue  # accepted by Kafka, record not written yet
                    if rec.status.terminal:
                        return rec
            raise AssertionError("the event stream ended")  # it never does on its own

        try:
            async with asyncio.timeout(timeout):
                return await follow()
        except TimeoutError:
            raise WaitTimeout(f"task {task_id} did not finish within {timeout:g}s") from None

    async def workflow(self, workflow_id: str) -> WorkflowRecord:
        return await self._blocking(self._client.workflow, workflow_id)

    # --- acting ---------------------------------------------------------------------------------------
    async def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a queued or retrying task (``TaskStateError`` for any other state)."""
        return await self._blocking(self._client.cancel, task_id)

    async def retry(self, task_id: str) -> TaskRecord:
        """Queue a failed, dead or cancelled task again."""
        return await self._blocking(self._client.retry, task_id)

    async def aclose(self) -> None:
        """Deliver what was submitted, then release the connections and the threads."""
        try:
            if self._hub is not None:
                await self._hub.close()
            await self._client.store.close_events()
            await self._blocking(self._client.close)
        finally:
            self._pool.shutdown(wait=False)


async def settled(sub: Submission, *, timeout: float) -> None:
    """Wait for a submission's acknowledgement (or failure), reported on another thread, without
    blocking the event loop (the HTTP API's submit and ``AsyncClient.submit``)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():  # wait_for may have given up and cancelled it
            done.set_result(None)

    def wake(_: Submission) -> None:
        loop.call_soon_threadsafe(settle)

    sub.add_done_callback(wake)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError as exc:
        raise SubmitFailed(f"task {sub.id}: Kafka has not acknowledged it within {timeout:g}s") from exc
