"""The worker on the in-memory transport (real Redis, no Kafka): its logic, fast and deterministic."""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from taskq.client import Client
from taskq.kafka.memory import MemoryBroker, MemoryTransport
from taskq.metrics import WorkerMetrics
from taskq.models import TaskMessage, TaskState
from taskq.registry import Registry
from taskq.settings import Settings
from taskq.store import Store
from taskq.worker import Worker
from tests.helpers import wait_all, wait_for


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def workers() -> Iterator[contextlib.ExitStack]:
    """Workers started in the test run in-process (``Worker.running``) and stop gracefully after it."""
    with contextlib.ExitStack() as stack:
        yield stack


def _start(settings: Settings, broker: MemoryBroker, workers: contextlib.ExitStack, wid: str) -> Worker:
    w = Worker(settings, worker_id=wid, registry=Registry.load([]), kafka=MemoryTransport(settings, broker))
    return workers.enter_context(w.running())


def test_two_workers_share_the_partitions_and_every_task_runs_once_through_a_graceful_handover(
    settings: Settings, broker: MemoryBroker, workers: contextlib.ExitStack
) -> None:
    a = _start(settings, broker, workers, "mem-a")
    wait_for(lambda: len(a.partitions) == settings.partitions, timeout=10, what="mem-a to own every partition")
    b = _start(settings, broker, workers, "mem-b")
    wait_for(lambda: a.partitions and b.partitions and len(a.partitions | b.partitions) == settings.partitions,
             timeout=10, what="the partitions to be split")
    client = Client(settings, producer=MemoryTransport(settings, broker).producer())
    try:
        ids = [client.submit("add", i, 1) for i in range(60)]
        records = wait_all(client, ids, timeout=30)
        assert [r.result for r in records] == [i + 1 for i in range(60)]
        assert {r.worker for r in records} == {"mem-a", "mem-b"}
        a.stop()  # mem-a leaves: mem-b takes everything over from the committed offsets
        wait_for(lambda: len(b.partitions) == settings.partitions, timeout=10, what="mem-b to own every partition")
        more = [client.submit("add", i, 2) for i in range(30)]
        later = wait_all(client, more, timeout=30)
        assert all(r.status is TaskState.SUCCESS and r.worker == "mem-b" and r.attempts == 1 for r in later)
        assert all(client.get(i).attempts == 1 for i in ids)  # nothing of the first batch ran again
    finally:
        client.close()


class _Flawed(Store):
    """A store whose scripts cannot take one message, nor one outcome: a stand-in for an input that
    breaks the worker's Redis step in a way nobody foresaw (the fuzzers look for real ones)."""

    def apply(self, outcomes: Any, starts: Any, **kw: Any) -> Any:
        if any(m.id == "culprit" for m in starts):
            raise TypeError("cannot encode the culprit")
        if any(f.task_id == "bad-outcome" and f.status is TaskState.SUCCESS for f in outcomes):
            raise ValueError("cannot encode this result")
        return super().apply(outcomes, starts, **kw)


def test_a_turn_that_fails_is_redone_one_by_one_and_only_the_culprit_is_set_aside(
    settings: Settings, broker: MemoryBroker, workers: contextlib.ExitStack
) -> None:
    metrics = WorkerMetrics(worker="mem-a", registry=CollectorRegistry())
    w = Worker(settings, worker_id="mem-a", registry=Registry.load([]), kafka=MemoryTransport(settings, broker),
               store=_Flawed(settings), metrics=metrics)
    workers.enter_context(w.running())
    wait_for(lambda: len(w.partitions) == settings.partitions, timeout=10, what="mem-a to own every partition")
    client = Client(settings, producer=MemoryTransport(settings, broker).producer())
    try:
        culprit = TaskMessage(id="culprit", task="add", args=[1, 1])
        bad_outcome = TaskMessage(id="bad-outcome", task="add", args=[2, 2])
        client.store.create([culprit, bad_outcome])
        producer = MemoryTransport(settings, broker).producer()
        producer.send([culprit, bad_outcome])
        ids = [client.submit("add", i, 1) for i in range(20)]
        assert [r.result for r in wait_all(client, ids, timeout=30)] == [i + 1 for i in range(20)]
        rec = client.wait("culprit", timeout=30)
        assert rec.status is TaskState.DEAD and "cannot be started: TypeError: cannot encode the culprit" in (
            rec.error or "")
        out = client.wait("bad-outcome", timeout=30)
        assert out.status is TaskState.FAILED
        assert out.error == "its outcome could not be recorded: ValueError: cannot encode this result"
        letters = [orjson.loads(r.value or b"") for r in broker.topics[settings.dead_topic][0]]
        assert [d["reason"] for d in letters] == ["cannot be started: TypeError: cannot encode the culprit"]
        assert base64.b64decode(letters[0]["value_b64"]) == culprit.to_bytes()
        assert metrics.registry.get_sample_value("taskq_worker_internal_errors_total", {"worker": "mem-a"}) >= 2
        assert metrics.registry.get_sample_value(
            "taskq_invalid_messages_total", {"worker": "mem-a", "reason": "unstartable"}) == 1
    finally:
        client.close()


@pytest.mark.parametrize("log_args", [False, True])
def test_the_per_task_lines_carry_args_and_results_only_when_asked(
    settings: Settings, broker: MemoryBroker, workers: contextlib.ExitStack, caplog: pytest.LogCaptureFixture,
    log_args: bool,
) -> None:
    secret = "4111-1111-1111-1111"
    s = settings.model_copy(update={"log_args": log_args})
    with caplog.at_level(logging.INFO):
        w = _start(s, broker, workers, "mem-log")
        wait_for(lambda: len(w.partitions) == s.partitions, timeout=10, what="mem-log to own every partition")
        client = Client(s, producer=MemoryTransport(s, broker).producer())
        try:
            tid = client.submit("echo", secret, "x")
            assert wait_all(client, [tid], timeout=30)[0].result == [secret, "x"]
        finally:
            client.close()
        # The line is written after the outcome is recorded: wait for it rather than for the record.
        wait_for(lambda: "Task Completed" in caplog.text, timeout=10, what="the completion line")
    received = next(r.getMessage() for r in caplog.records if "Received Task ID" in r.getMessage())
    completed = next(r.getMessage() for r in caplog.records if "Task Completed" in r.getMessage())
    assert f"Received Task ID: {tid} | Task: echo | Args: " in received
    if log_args:
        assert secret in received and secret in completed
    else:
        assert secret not in caplog.text
        assert "<2 positional, 0 keyword; TASKQ_LOG_ARGS=true shows them>" in received
        assert completed.endswith("Task Completed: Result = <hidden>")
