"""/api/events against a real uvicorn server, Kafka and Redis: idle streams, outages, resumption."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
import redis.asyncio as aioredis

from taskq.client import Client
from taskq.devstack import RedisServer, free_port
from taskq.eventhub import EventHub
from taskq.settings import Settings
from tests.helpers import ApiServer, Services, WorkerFactory, make_settings


@dataclass
class Event:
    kind: str
    id: str
    data: dict  # type: ignore[type-arg]


class SseListener:
    """Reads one /api/events stream on a thread; tests take events with deadlines."""

    def __init__(self, base_url: str, **params: str) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        self._response: httpx.Response | None = None
        self._stop = threading.Event()
        self._http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(5, read=60))
        self._thread = threading.Thread(target=self._run, args=(params,), daemon=True)
        self._thread.start()

    def _run(self, params: dict[str, str]) -> None:
        try:
            self._read(params)
        except (httpx.HTTPError, OSError):
            if not self._stop.is_set():
                raise

    def _read(self, params: dict[str, str]) -> None:
        with self._http.stream("GET", "/api/events", params=params) as r:
            self._response = r
            kind, eid, data = "message", "", ""
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("id:"):
                    eid = line[3:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif not line and data:
                    self.events.put(Event(kind, eid, json.loads(data)))
                    kind, eid, data = "message", "", ""

    def next(self, *, timeout: float, where: object = None) -> Event:
        """The next event (matching ``where(event)``, skipping others), or AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(ev)
            if where is None or where(ev):  # type: ignore[operator]
                return ev
        raise AssertionError(f"no matching event within {timeout}s; saw {[(e.kind, e.data) for e in self.seen]}")

    def close(self) -> None:
        self._stop.set()
        if self._response is not None:
            self._response.close()  # the connection itself: the server sees the stream end now
        self._http.close()


@pytest.fixture
def api(settings: Settings) -> Iterator[ApiServer]:
    a = ApiServer(settings)
    yield a
    a.close()


@dataclass
class OwnRedis:
    """An API on a Redis of its own (one a test may stop, or whose clients it counts)."""

    redis: RedisServer
    settings: Settings
    api: ApiServer


@pytest.fixture
def own_redis(services: Services, tmp_path: Path) -> Iterator[OwnRedis]:
    redis = RedisServer(data_dir=tmp_path / "redis", port=free_port())
    redis.start()
    settings = make_settings(services, redis_url=redis.url)
    api = ApiServer(settings)
    try:
        yield OwnRedis(redis, settings, api)
    finally:
        api.close()
        redis.stop()


def _task_event(tid: str, status: str) -> object:
    return lambda e: e.kind == "task" and e.data.get("id") == tid and e.data.get("status") == status


def test_idle_stream_sends_no_error_and_then_delivers_a_new_task(api: ApiServer, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    sse = SseListener(api.url)
    try:
        sse.next(timeout=10, where=lambda e: e.kind == "ready")
        # Two blocking reads of 5 s come back empty: neither may look like an outage.
        with pytest.raises(AssertionError, match="no matching event"):
            sse.next(timeout=12, where=lambda e: e.kind == "error")
        tid = api.http.post("/api/tasks", json={"task": "add", "args": [5, 5]}).json()["id"]
        sse.next(timeout=20, where=_task_event(tid, "queued"))
        sse.next(timeout=20, where=_task_event(tid, "success"))
        assert not [e for e in sse.seen if e.kind == "error"]
    finally:
        sse.close()


def test_stream_resumes_after_the_given_event_id(api: ApiServer, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    sse = SseListener(api.url)
    try:
        sse.next(timeout=10, where=lambda e: e.kind == "ready")
        tid = api.http.post("/api/tasks", json={"task": "add", "args": [1, 1]}).json()["id"]
        first = sse.next(timeout=20, where=_task_event(tid, "queued"))
        sse.next(timeout=20, where=_task_event(tid, "success"))
    finally:
        sse.close()
    replay = SseListener(api.url, since=first.id)
    try:
        replay.next(timeout=10, where=_task_event(tid, "success"))
        assert not [e for e in replay.seen if e.kind == "task" and e.data.get("status") == "queued"]
    finally:
        replay.close()
    assert api.http.get("/api/events", params={"since": "garbage"}).status_code == 422


def test_redis_outage_is_reported_once_and_the_stream_goes_on(
    own_redis: OwnRedis, start_worker: WorkerFactory
) -> None:
    redis, settings, api = own_redis.redis, own_redis.settings, own_redis.api
    sse = SseListener(api.url)
    try:
        start_worker("w1", settings_=settings)
        sse.next(timeout=10, where=lambda e: e.kind == "ready")
        redis.stop()
        sse.next(timeout=20, where=lambda e: e.kind == "error")
        redis.start()
        sse.next(timeout=30, where=lambda e: e.kind == "ready")
        assert len([e for e in sse.seen if e.kind == "error"]) == 1
        tid = api.http.post("/api/tasks", json={"task": "add", "args": [2, 3]}).json()["id"]
        sse.next(timeout=30, where=_task_event(tid, "success"))
    finally:
        sse.close()


def test_the_sdk_event_stream_says_ready_then_delivers_a_task_change(client: Client) -> None:
    """``Client.events`` is what /api/events serves: ready once subscribed, then each change."""
    async def read() -> list[str]:
        seen: list[str] = []
        stream = client.events()
        try:
            async for event in stream:
                seen.append(event.kind if event.kind != "task" else f"task:{event.data['status']}")
                if event.kind == "ready":
                    await asyncio.to_thread(client.submit, "add", 1, 1)
                if event.kind == "task":
                    return seen
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await client.store.close_events()
        return seen

    assert asyncio.run(asyncio.wait_for(read(), timeout=30)) == ["ready", "task:queued"]


def _blocking_readers(redis_url: str) -> int:
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sum(1 for c in r.client_list() if c.get("cmd") == "xread")
    finally:
        r.close()


def test_many_streams_share_one_redis_reader_and_each_gets_every_change(
    own_redis: OwnRedis, start_worker: WorkerFactory
) -> None:
    # A Redis of its own: the blocking readers counted are this API's and nobody else's.
    redis, settings, api = own_redis.redis, own_redis.settings, own_redis.api
    streams = [SseListener(api.url) for _ in range(4)]
    try:
        start_worker("w1", settings_=settings)
        for sse in streams:
            sse.next(timeout=10, where=lambda e: e.kind == "ready")
        tid = api.http.post("/api/tasks", json={"task": "add", "args": [2, 2]}).json()["id"]
        for sse in streams:
            sse.next(timeout=30, where=_task_event(tid, "success"))
        assert _blocking_readers(redis.url) == 1
    finally:
        for sse in streams:
            sse.close()


def test_past_the_stream_cap_a_caller_is_told_when_to_come_back(settings: Settings) -> None:
    api = ApiServer(settings.model_copy(update={"api_max_streams": 2}))
    try:
        with api.http.stream("GET", "/api/events") as first, api.http.stream("GET", "/api/events") as second:
            assert first.status_code == second.status_code == 200
            refused = api.http.get("/api/events")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert "TASKQ_API_MAX_STREAMS" in refused.json()["detail"]
        # Both streams are closed: their slots come back once the server sees them end.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with api.http.stream("GET", "/api/events") as a, api.http.stream("GET", "/api/events") as b:
                if a.status_code == b.status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the closed streams' slots never came back")
    finally:
        api.close()


def test_a_subscriber_that_falls_behind_catches_up_with_nothing_skipped_or_repeated(settings: Settings) -> None:
    """A subscriber whose queue overflows reads what it missed from Redis, then goes on live; one
    that resumes from an old id reads the backlog first. Neither sees an event twice."""
    key = f"{settings.prefix}hub-test"

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        r = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        first = str(await r.xadd(key, {"type": "task", "n": "0"}))
        hub = EventHub(r, key, max_streams=10, queue_max=5, block_ms=200)
        slow_events = hub.subscribe("$")
        resumed_events = hub.subscribe(first)
        try:
            ready = await anext(slow_events)
            assert ready.kind == "ready"
            written = [str(await r.xadd(key, {"type": "task", "n": str(i)})) for i in range(1, 60)]
            slow = [str(e.id) for e in [await anext(slow_events) for _ in written]]
            assert (await anext(resumed_events)).kind == "ready"
            resumed = [str(e.id) for e in [await anext(resumed_events) for _ in written]]
            more = await r.xadd(key, {"type": "task", "n": "60"})
            assert (await anext(slow_events)).id == more == (await anext(resumed_events)).id
            return written, slow, resumed
        finally:
            await slow_events.aclose()  # type: ignore[attr-defined]
            await resumed_events.aclose()  # type: ignore[attr-defined]
            await hub.close()
            await r.aclose()

    written, slow, resumed = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert slow == written and resumed == written
