"""Tracing against real Kafka and Redis: submit, wait and run spans of one task link up in one trace,
from the SDK and from the HTTP API, in one process and across processes (a worker subprocess writing
its spans with ``TASKQ_TRACING=jsonl:<path>``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace

from taskq import task, tracing
from taskq.client import Client
from taskq.devstack import free_port, spawn, stop_process
from taskq.models import TaskState
from taskq.registry import Registry
from taskq.settings import Settings
from taskq.worker import Worker
from tests.helpers import ApiServer, WorkerFactory, settings_env, wait_for
from tests.spans import Span, finished, ids, ids_of, in_memory_spans, of_task

pytestmark = pytest.mark.both_clients

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@task
def traced_sync() -> str | None:
    """The trace context the task's own code sees: its run span's."""
    return tracing.current_traceparent()


@task
async def traced_async() -> str | None:
    await asyncio.sleep(0)
    return tracing.current_traceparent()


@pytest.fixture
def worker(settings: Settings) -> Iterator[Worker]:
    registry = Registry.load(["tests.sample_tasks", __name__])
    w = Worker(settings, worker_id="traced-1", registry=registry)
    with w.running():
        wait_for(lambda: len(w.partitions) == settings.partitions, timeout=30, what="the worker to join")
        yield w


def _linked(spans: list[Span], task_id: str, *, runs: int = 1) -> tuple[Span, list[Span], list[Span]]:
    """The task's submit span, and its waits and runs: all in the submit span's trace, as its children."""
    mine = of_task(spans, task_id)
    (submit,) = mine["submit"]
    assert submit.kind == "PRODUCER" and len(mine["run"]) == runs and len(mine["wait"]) == runs, mine
    for s in mine["wait"] + mine["run"]:
        assert (s.trace_id, s.parent_id) == (submit.trace_id, submit.span_id), (submit, s)
        assert s.start >= submit.start
    for wait, run in zip(mine["wait"], mine["run"], strict=True):
        assert wait.end <= run.start and run.kind == "CONSUMER"
    return submit, mine["wait"], mine["run"]


def test_sdk_submit_wait_and_run_spans_link_up_in_the_callers_trace(client: Client, worker: Worker) -> None:
    with in_memory_spans() as exporter:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            sync_id = client.submit("traced_sync")
            async_id = client.submit("traced_async")
            limited_id = client.submit("add", 1, 2, _timeout=30)  # runs in a child process
        records = {i: client.wait(i, timeout=30) for i in (sync_id, async_id, limited_id)}
        spans = finished(exporter)
    caller_ctx = caller.get_span_context()
    for tid, rec in records.items():
        assert rec.status is TaskState.SUCCESS, rec
        submit, _, (run,) = _linked(spans, tid)
        assert (submit.trace_id, submit.parent_id) == (f"{caller_ctx.trace_id:032x}", f"{caller_ctx.span_id:016x}")
        assert run.attributes["taskq.worker"] == "traced-1" and run.attributes["taskq.attempt"] == 1
        assert run.attributes["taskq.outcome"] == "success"
        assert ids(rec.trace) == ids_of(submit)  # the record keeps the context for retries
    # The task's own code runs inside its run span, sync and async alike.
    assert ids(records[sync_id].result) == ids_of(of_task(spans, sync_id)["run"][0])
    assert ids(records[async_id].result) == ids_of(of_task(spans, async_id)["run"][0])


def test_a_retried_task_runs_again_in_the_same_trace(client: Client, worker: Worker, tmp_path: Path) -> None:
    with in_memory_spans() as exporter:
        tid = client.submit("flaky", str(tmp_path / "runs"), 1)
        rec = client.wait(tid, timeout=30)
        spans = finished(exporter)
    assert rec.status is TaskState.SUCCESS and rec.attempts == 2
    _, _, (first, second) = _linked(spans, tid, runs=2)
    assert (first.attributes["taskq.attempt"], second.attributes["taskq.attempt"]) == (1, 2)
    assert first.status == "ERROR" and first.events == ["exception"] and second.status == "UNSET"


def _ancestors(spans: list[Span], s: Span) -> list[str]:
    """The parent span ids above ``s``, up to the first that was not recorded here (a remote caller)."""
    by_id = {x.span_id: x for x in spans}
    chain: list[str] = []
    while s.parent_id is not None:
        chain.append(s.parent_id)
        if s.parent_id not in by_id:
            break
        s = by_id[s.parent_id]
    return chain


def test_the_api_continues_the_callers_traceparent_header(settings: Settings, worker: Worker,
                                                          client: Client) -> None:
    with in_memory_spans() as exporter, contextlib.closing(ApiServer(settings)) as api:
        one = api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]}, headers={"traceparent": CALLER})
        batch = api.http.post("/api/tasks/batch", json=[{"task": "add", "args": [i, 1]} for i in range(3)],
                              headers={"traceparent": CALLER})
        bad = api.http.post("/api/tasks", json={"task": "add", "args": [1, 1]}, headers={"traceparent": "junk"})
        assert one.status_code == batch.status_code == bad.status_code == 202, (one.text, batch.text, bad.text)
        ids_ = [one.json()["id"], *batch.json()["ids"]]
        for i in [*ids_, bad.json()["id"]]:
            assert client.wait(i, timeout=30).status is TaskState.SUCCESS
        # FastAPI's own request spans end once the response is out.
        wait_for(lambda: sum(s.kind == "SERVER" for s in finished(exporter)) >= 3, timeout=10,
                 what="the API's request spans")
        spans = finished(exporter)
    caller_trace, caller_span = ids(CALLER)  # type: ignore[misc]
    for tid in ids_:
        submit, _, _ = _linked(spans, tid)
        # submit -> FastAPI's endpoint span -> its request (SERVER) span -> the caller's span
        assert submit.trace_id == caller_trace and _ancestors(spans, submit)[-1] == caller_span
    junk_submit, _, _ = _linked(spans, bad.json()["id"])
    assert junk_submit.trace_id != caller_trace and caller_span not in _ancestors(spans, junk_submit)


def _jsonl(path: Path) -> list[Span]:
    if not path.exists():
        return []
    return [Span.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.endswith("}")]


def test_spans_link_across_processes_to_a_worker_writing_jsonl(settings: Settings, client: Client,
                                                               start_worker: WorkerFactory, tmp_path: Path) -> None:
    path = tmp_path / "worker-spans.jsonl"
    start_worker("traced-proc", settings_=settings.model_copy(update={"tracing": f"jsonl:{path}"}),
                 extra=["--tasks", "tests.sample_tasks"])
    # The SDK in this process makes the submit span; the worker process makes the wait and run spans.
    with in_memory_spans() as exporter:
        tid = client.submit("flaky", str(tmp_path / "runs"), 1)
        assert client.wait(tid, timeout=30).status is TaskState.SUCCESS
        (submit,) = of_task(finished(exporter), tid)["submit"]
    # With no tracer provider in the API's process the caller's context passes through as it is.
    with contextlib.closing(ApiServer(settings)) as api:
        resp = api.http.post("/api/tasks", json={"task": "add", "args": [2, 3]}, headers={"traceparent": CALLER})
        assert resp.status_code == 202, resp.text
        via_api = resp.json()["id"]
        assert client.wait(via_api, timeout=30).status is TaskState.SUCCESS

    def written() -> dict[str, list[Span]] | None:
        spans = _jsonl(path)
        a, b = of_task(spans, tid), of_task(spans, via_api)
        return {"sdk": a["wait"] + a["run"], "api": b["wait"] + b["run"]} \
            if len(a["run"]) == 2 and len(b["run"]) == 1 else None

    wait_for(written, timeout=10, what="the worker's spans in the jsonl file")
    got = written()
    assert got is not None
    assert {(s.trace_id, s.parent_id) for s in got["sdk"]} == {ids_of(submit)}
    assert sorted(s.name for s in got["sdk"]) == ["taskq run flaky"] * 2 + ["taskq wait flaky"] * 2
    assert {(s.trace_id, s.parent_id) for s in got["api"]} == {ids(CALLER)}
    assert all(s.attributes["taskq.worker"] == "traced-proc" for s in got["sdk"] + got["api"])


def test_a_request_through_an_api_process_and_a_worker_process_is_one_trace(
    settings: Settings, client: Client, start_worker: WorkerFactory, tmp_path: Path,
) -> None:
    """caller (this test) -> `taskq api` process -> Kafka -> `taskq worker` process, each writing jsonl."""
    api_spans, worker_spans = tmp_path / "api.jsonl", tmp_path / "worker.jsonl"
    start_worker("traced-w", settings_=settings.model_copy(update={"tracing": f"jsonl:{worker_spans}"}))
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as fh:
        proc = spawn([sys.executable, "-m", "taskq", "api", "--port", str(port)],
                     env=settings_env(settings.model_copy(update={"tracing": f"jsonl:{api_spans}"})), stdout=fh)
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, what=f"the API process ({log.read_text(errors='replace')})")
        resp = httpx.post(f"http://127.0.0.1:{port}/api/tasks", json={"task": "add", "args": [4, 5]},
                          headers={"traceparent": CALLER}, timeout=30)
        assert resp.status_code == 202, resp.text
        tid = resp.json()["id"]
        assert client.wait(tid, timeout=30).status is TaskState.SUCCESS

        def reached_caller() -> bool:
            # FastAPI's request span (the submit span's grandparent) is written once the response is out.
            in_api = _jsonl(api_spans)
            submits = of_task(in_api, tid)["submit"]
            return bool(submits) and _ancestors(in_api, submits[0])[-1] == ids(CALLER)[1]  # type: ignore[index]

        wait_for(lambda: of_task(_jsonl(worker_spans), tid)["run"] and reached_caller(), timeout=10,
                 what="the spans of both processes")
    finally:
        stop_process(proc, timeout=20)
    in_api = _jsonl(api_spans)
    (submit,) = of_task(in_api, tid)["submit"]
    assert submit.trace_id == ids(CALLER)[0] and _ancestors(in_api, submit)[-1] == ids(CALLER)[1]  # type: ignore[index]
    mine = of_task(_jsonl(worker_spans), tid)
    assert {(s.trace_id, s.parent_id) for s in mine["wait"] + mine["run"]} == {ids_of(submit)}
