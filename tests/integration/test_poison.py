"""Poison messages and poison tasks against real Kafka, Redis and worker processes: whatever bytes
reach the tasks topic and whatever a task does to its process, the fleet stays up, every bad message
ends as a dead letter (or a record) with its reason, and the valid work around it runs."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from taskq.client import Client
from taskq.models import TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import ApiServer, WorkerFactory, WorkerProc, wait_all, wait_for

TASKS = ["--tasks", "tests.poison_tasks"]


def valid(tid: str, task: str, args: list[object]) -> bytes:
    return orjson.dumps({"v": 1, "id": tid, "task": task, "args": args, "kwargs": {}, "gen": 0,
                         "created_at": time.time()})


def nested(depth: int, leaf: bytes) -> bytes:
    return b"[" * depth + leaf + b"]" * depth


def poison_messages() -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    """Messages a buggy or hostile producer in any language can write: each must end dead-lettered."""
    head = b'{"v":1,"id":"p-%d","task":"echo","args":'
    return [
        (head % 1 + nested(600, b"") + b"}", []),  # orjson reads it, but cannot write it back
        (head % 2 + nested(995, b"1234567890123456789") + b"}", []),  # past Python's json recursion limit
        (None, []),  # a tombstone
        (b"\xff\xfe not utf-8 \x80", []),
        (b'{"v":1,"id":"\\ud800","task":"echo"}', []),  # a lone surrogate
        (b'{"v":1,"id":"p-6","task":"echo","args":{"not":"a list"}}', []),
        (b'{"v":1,"id":"p-7","task":"echo","created_at":1e308}', []),
        (b'{"v":1,"id":"p-8","task":"echo","gen":-1}', []),
        (b'{"v":2,"id":"p-9","task":"echo"}', []),
        (b'[1, 2, 3]', []),
        (b'{"v":1,"id":"p-11","task":"echo","args":[123456789012345678901234567890]}', []),
    ]


def _dead_letters(settings: Settings, n: int, timeout: float = 60) -> list[dict]:  # type: ignore[type-arg]
    consumer = KafkaConsumer(settings.dead_topic, bootstrap_servers=settings.kafka_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000)
    out: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            out += [orjson.loads(rec.value) for rec in consumer]
    finally:
        consumer.close()
    return out


@pytest.mark.both_clients
def test_poison_messages_end_as_dead_letters_while_every_worker_stays_up_and_valid_tasks_run(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    workers = [start_worker(f"w{i}", concurrency=4) for i in (1, 2)]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    bad = poison_messages()
    good: list[str] = []
    try:
        for i, (value, headers) in enumerate(bad):
            producer.send(settings.tasks_topic, value=value, key=f"k{i}".encode(), headers=headers)
            tid = f"good-{i}"
            producer.send(settings.tasks_topic, value=valid(tid, "add", [i, 1]), key=f"k{i}".encode())
            good.append(tid)
        # A valid task whose trace header is binary junk, 10 kB of it: the header is ignored, the task runs.
        producer.send(settings.tasks_topic, value=valid("good-header", "add", [40, 2]),
                      headers=[("traceparent", bytes(range(256)) * 40)])
        good.append("good-header")
        producer.flush()
    finally:
        producer.close()
    records = wait_all(client, good, timeout=90)
    assert [r.status for r in records] == [TaskState.SUCCESS] * len(good)
    assert [r.result for r in records] == [i + 1 for i in range(len(bad))] + [42]
    letters = _dead_letters(settings, len(bad))
    assert len(letters) == len(bad), letters
    raw = sorted((base64.b64decode(d["value_b64"]), d["value_null"]) for d in letters)
    assert raw == sorted((v or b"", v is None) for v, _ in bad)
    assert all(d["reason"] for d in letters)
    assert any("nested" in d["reason"] for d in letters)
    for w in workers:
        assert w.proc.poll() is None, w.output()[-3000:]
    # ... and the fleet still works.
    assert client.wait(client.submit("add", 1, 2), timeout=30).result == 3


class Fleet:
    """Worker processes restarted when they die, as Kubernetes restarts a pod (called from the test's
    own thread: a worker dies with the thread that spawned it)."""

    def __init__(self, start_worker: WorkerFactory, ids: list[str], **options: object) -> None:
        self.start, self.options = start_worker, options
        self.procs = {wid: start_worker(wid, **options) for wid in ids}
        self.deaths: list[str] = []

    def tend(self) -> None:
        for wid, w in list(self.procs.items()):
            if w.proc.poll() is not None:
                self.deaths.append(wid)
                self.procs[wid] = self.start(wid, wait_ready=False, **self.options)

    def until(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        def tended() -> bool:
            self.tend()
            return check()
        wait_for(tended, timeout=timeout, what=what, interval=0.2)

    def alive(self) -> list[WorkerProc]:
        return [w for w in self.procs.values() if w.proc.poll() is None]


def test_a_task_that_kills_its_worker_runs_isolated_next_time_and_fails_without_taking_another_worker(
    client: Client, start_worker: WorkerFactory
) -> None:
    fleet = Fleet(start_worker, ["w1", "w2"], concurrency=4, extra=TASKS)
    bad = client.submit("exits", 3)
    others = [client.submit("add", i, 1) for i in range(30)]
    fleet.until(lambda: client.get(bad).status.terminal, timeout=120, what="the poison task to end")
    rec = client.get(bad)
    assert rec.status is TaskState.FAILED, rec
    assert rec.error is not None and "the task process exited (3)" in rec.error
    assert rec.attempts == 2 and rec.history[0]["outcome"] == "lost"
    assert len(fleet.deaths) == 1  # the first run's worker; the isolated run took only its child
    fleet.until(lambda: all(client.get(t).status.terminal for t in others), timeout=90, what="the others")
    assert [client.get(t).result for t in others] == [i + 1 for i in range(30)]


def test_a_task_whose_runs_keep_losing_their_worker_ends_dead_after_max_lost_runs(
    settings: Settings, client: Client, store: Store, start_worker: WorkerFactory
) -> None:
    fleet = Fleet(start_worker, ["w1", "w2"], concurrency=4, extra=TASKS)
    bad = client.submit("kills_its_process_group")  # @task(max_lost_runs=1)
    try:
        fleet.until(lambda: client.get(bad).status.terminal, timeout=180, what="the poison task to end")
    except AssertionError:
        logs = "\n".join(f"--- {w.id}\n{w.output()[-3000:]}" for w in fleet.procs.values())
        raise AssertionError(f"{client.get(bad)}\ndeaths {fleet.deaths}\n{logs}") from None
    rec = client.get(bad)
    assert rec.status is TaskState.DEAD, rec
    assert rec.error is not None and rec.error.startswith("its worker was lost 2 times while running it; last: w")
    assert [h["outcome"] for h in rec.history] == ["lost", "lost"]
    assert len(fleet.deaths) == 2
    letter = next(d for d in _dead_letters(settings, 1) if d.get("id") == bad)
    assert letter["reason"] == "worker lost too often" and letter["task"] == "kills_its_process_group"
    # The fleet is whole again and runs work.
    fleet.until(lambda: len(fleet.alive()) == 2, timeout=60, what="both workers back")
    assert client.wait(client.submit("add", 2, 2), timeout=60).result == 4


def test_a_cancel_asked_before_its_worker_was_lost_is_honoured_on_redelivery(
    client: Client, start_worker: WorkerFactory
) -> None:
    w1 = start_worker("w1", concurrency=2, extra=["--tasks", "tests.sample_tasks"])
    tid = client.submit("spin")  # never looks at its cancel flag
    wait_for(lambda: client.get(tid).status is TaskState.RUNNING, timeout=30, what="the task to start")
    assert client.cancel(tid).cancel_requested  # asked while w1 still runs it
    w1.kill()
    start_worker("w2", concurrency=2, extra=["--tasks", "tests.sample_tasks"])
    rec = client.wait(tid, timeout=90)
    assert rec.status is TaskState.CANCELLED and rec.attempts == 1, rec  # not run again
    assert rec.error == "cancelled: its worker was lost while running it"
    assert rec.history[0]["outcome"] == "lost" and rec.history[0]["worker"] == "w1"


def test_a_task_type_paused_while_its_worker_was_lost_waits_queued_and_runs_once_resumed(
    client: Client, start_worker: WorkerFactory
) -> None:
    w1 = start_worker("w1", concurrency=2)
    tid = client.submit("sleep", 30)
    wait_for(lambda: client.get(tid).status is TaskState.RUNNING, timeout=30, what="the task to start")
    client.pause_task_type("sleep")
    w1.kill()
    start_worker("w2", concurrency=2)
    wait_for(lambda: client.get(tid).status is TaskState.QUEUED and client.get(tid).waiting_for == "paused",
             timeout=90, what="the redelivered task to wait, paused")
    assert client.get(tid).history[0]["outcome"] == "lost"
    client.resume_task_type("sleep")
    wait_for(lambda: client.get(tid).status is TaskState.RUNNING, timeout=30, what="it to run once resumed")


def test_a_task_over_its_memory_limit_fails_with_memory_error_and_its_worker_lives_on(
    client: Client, start_worker: WorkerFactory
) -> None:
    w = start_worker("w1", concurrency=2, extra=TASKS)
    over, under = client.submit("hog", 512), client.submit("hog", 8)
    rec = client.wait(over, timeout=60)
    assert rec.status is TaskState.FAILED and rec.error is not None and "MemoryError" in rec.error, rec
    assert client.wait(under, timeout=60).result == 8 * 1024 * 1024
    assert w.proc.poll() is None


def test_arguments_that_do_not_fit_the_annotations_fail_cleanly_before_the_call(
    client: Client, start_worker: WorkerFactory
) -> None:
    w = start_worker("w1", concurrency=2)
    rec = client.wait(client.submit("multiply", "x", 2000000000), timeout=60)
    assert rec.status is TaskState.FAILED and rec.attempts == 1, rec
    assert rec.error is not None and rec.error.startswith("TypeError: argument 'a': "), rec.error
    assert client.wait(client.submit("multiply", 6, 7), timeout=60).result == 42
    assert w.proc.poll() is None


def test_the_api_refuses_arguments_that_do_not_fit_a_live_workers_signature_with_422(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    start_worker("w1", concurrency=2)
    api = ApiServer(settings)
    try:
        r = api.http.post("/api/tasks", json={"task": "multiply", "args": ["x", 2000000000]})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == ("multiply(a: float, b: float) -> float: argument 'a' must be float, "
                                      "got str 'x'")
        r = api.http.post("/api/tasks", json={"task": "add", "args": [1]})
        assert r.status_code == 422 and "missing argument 'b'" in r.json()["detail"]
        r = api.http.post("/api/tasks/batch",
                          json=[{"task": "add", "args": [1, 2]}, {"task": "add", "kwargs": {"c": 1}}])
        assert r.status_code == 422 and "has no parameter 'c'" in r.json()["detail"]
        assert api.http.post("/api/tasks", json={"task": "multiply", "args": [6, 7.5]}).status_code == 202
        assert api.http.post("/api/tasks", json={"task": "echo", "args": [1, "x", [2]]}).status_code == 202
    finally:
        api.close()


def test_a_task_failing_with_an_enormous_error_is_recorded_with_the_error_cut_and_saying_so(
    client: Client, start_worker: WorkerFactory
) -> None:
    w = start_worker("w1", concurrency=2)
    rec = client.wait(client.submit("fail", "E" * 900_000), timeout=60)
    assert rec.status is TaskState.FAILED and rec.error is not None
    assert len(rec.error) < 9_000 and rec.error.endswith("more characters]") and "[cut: " in rec.error
    assert w.proc.poll() is None
