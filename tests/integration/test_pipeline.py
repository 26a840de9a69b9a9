"""The core pipeline against the real broker and Redis: load balancing, crash, graceful stop, HOL."""

from __future__ import annotations

import time

import pytest

from taskq.client import Client, TaskRequest
from taskq.kafka import transport
from taskq.models import TaskMessage, TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import WorkerFactory, wait_all, wait_for

pytestmark = pytest.mark.both_clients


def _alive_with_partitions(store: Store, ids: set[str]) -> bool:
    ws = {w.id: w for w in store.workers()}
    return all(i in ws and ws[i].status == "alive" and ws[i].partitions for i in ids)


def _running_on(store: Store, worker: str) -> list[str]:
    page = store.list_tasks(status=TaskState.RUNNING, limit=500)
    return [r.id for r in page.items if r.worker == worker]


def test_three_workers_all_receive_work_and_every_result_is_right(
    client: Client, store: Store, start_worker: WorkerFactory
) -> None:
    for i in (1, 2, 3):
        start_worker(f"w{i}")
    wait_for(lambda: _alive_with_partitions(store, {"w1", "w2", "w3"}), timeout=30, what="3 workers with partitions")
    ids = client.submit_many([TaskRequest("add", (i, i * 10)) for i in range(60)])
    records = wait_all(client, ids, timeout=60)
    assert [r.status for r in records] == [TaskState.SUCCESS] * 60
    assert [r.result for r in records] == [i + i * 10 for i in range(60)]
    assert {r.worker for r in records} == {"w1", "w2", "w3"}
    assert all(r.attempts == 1 for r in records)
    processed = {w.id: w.processed for w in store.workers()}
    assert sum(processed.values()) == 60 and min(processed.values()) > 0


@pytest.mark.both_clients(extra=("confluent-classic",))
def test_tasks_of_a_killed_worker_finish_elsewhere_with_a_second_attempt(
    client: Client, store: Store, start_worker: WorkerFactory, settings: Settings
) -> None:
    workers = {i: start_worker(f"w{i}", concurrency=4) for i in (1, 2, 3)}
    wait_for(lambda: _alive_with_partitions(store, {"w1", "w2", "w3"}), timeout=30, what="3 workers")
    ids = client.submit_many([TaskRequest("sleep", (2.5,)) for _ in range(36)])
    wait_for(lambda: len(_running_on(store, "w2")) >= 2, timeout=20, what="w2 to run tasks")
    workers[2].kill()
    killed_at = time.time()
    # Read after the kill: w2 may start more between a read and the kill. Its runs stay recorded
    # as running on it until the survivors take them over (after the session timeout).
    orphans = set(_running_on(store, "w2"))
    assert orphans, "w2 ran nothing at its kill: redelivery would go unproven"

    records = wait_all(client, ids, timeout=120)
    assert all(r.status == TaskState.SUCCESS for r in records), [(r.id, r.status) for r in records]
    by_id = {r.id: r for r in records}
    for tid in orphans:
        rec = by_id[tid]
        assert rec.attempts == 2, rec
        assert rec.worker in {"w1", "w3"}
        assert rec.history[0]["worker"] == "w2" and rec.history[0]["outcome"] == "lost"
        assert "w2 was lost" in rec.history[1]["reason"]
    assert all(r.attempts == 1 for r in records if r.id not in orphans)
    recovery = max(by_id[t].finished_at for t in orphans) - killed_at  # type: ignore[operator]
    print(f"\nrecovery: last orphaned task finished {recovery:.1f}s after SIGKILL "
          f"({settings.kafka_client}, {settings.consumer_group_protocol} protocol)")
    assert {w.id: w.status for w in store.workers()}["w2"] == "lost"

    # The same id comes back: alive again, and it gets partitions and work.
    start_worker("w2")
    wait_for(lambda: _alive_with_partitions(store, {"w1", "w2", "w3"}), timeout=30, what="w2 alive again")
    more = client.submit_many([TaskRequest("add", (i, 1)) for i in range(60)])
    again = wait_all(client, more, timeout=60)
    assert "w2" in {r.worker for r in again}


@pytest.mark.both_clients(extra=("confluent-classic",))
def test_sigterm_finishes_in_flight_tasks_and_hands_partitions_over(
    client: Client, store: Store, start_worker: WorkerFactory, settings: Settings
) -> None:
    workers = {i: start_worker(f"w{i}", concurrency=4) for i in (1, 2, 3)}
    wait_for(lambda: _alive_with_partitions(store, {"w1", "w2", "w3"}), timeout=30, what="3 workers")
    ids = client.submit_many([TaskRequest("sleep", (2,)) for _ in range(24)])
    wait_for(lambda: len(_running_on(store, "w3")) >= 1, timeout=20, what="w3 to run tasks")
    in_flight = set(_running_on(store, "w3"))
    workers[3].terminate()
    assert workers[3].wait(timeout=settings.shutdown_grace + 10) == 0
    stopped_at = time.monotonic()
    wait_for(
        lambda: sorted(p for w in store.workers() if w.status == "alive" for p in w.partitions)
        == list(range(settings.partitions)),
        timeout=10, what="w1 and w2 to own every partition",
    )
    takeover = time.monotonic() - stopped_at
    records = wait_all(client, ids, timeout=90)
    assert all(r.status == TaskState.SUCCESS for r in records)
    assert all(r.attempts == 1 for r in records), [(r.id, r.attempts) for r in records if r.attempts > 1]
    assert all({r.id: r for r in records}[t].worker == "w3" for t in in_flight)
    assert {w.id: w.status for w in store.workers()}["w3"] == "stopped"
    print(f"\npartitions taken over {takeover:.2f}s after the graceful stop")


def test_a_slow_task_does_not_block_the_rest_of_its_partition(
    client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1", concurrency=4)
    slow = client.submit("sleep", 10, _key="same-partition")
    wait_for(lambda: client.get(slow).status == TaskState.RUNNING, timeout=20, what="the slow task to start")
    quick = client.submit_many([TaskRequest("add", (i, 1), key="same-partition") for i in range(20)])
    records = wait_all(client, quick, timeout=60)
    assert all(r.status == TaskState.SUCCESS for r in records)
    # Behind it in its partition, yet all done while it still ran: not held back, however busy the machine.
    slow_rec = client.get(slow)
    assert slow_rec.status == TaskState.RUNNING or all(
        (r.finished_at or 0) < (slow_rec.finished_at or 0) for r in records), slow_rec


def test_a_message_redelivered_after_success_is_not_run_again(
    client: Client, start_worker: WorkerFactory, settings: Settings
) -> None:
    w = start_worker("w1")
    tid = client.submit("add", 20, 22)
    first = client.wait(tid, timeout=20)
    assert first.status == TaskState.SUCCESS and first.result == 42
    # Deliver the very same message again, as a crash before the offset commit would.
    dup = TaskMessage(id=tid, task="add", args=[20, 22], created_at=first.created_at or 0)
    producer = transport(settings).producer()
    producer.send([dup])
    producer.close()
    wait_for(lambda: f"Skipped Task ID: {tid}" in w.output(), timeout=20, what="the duplicate to be skipped")
    again = client.get(tid)
    assert again.attempts == 1 and again.finished_at == first.finished_at
    assert w.output().count(f"Received Task ID: {tid}") == 1


def test_unknown_task_fails_with_the_list_of_known_tasks(client: Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    rec = client.wait(client.submit("no_such_task", 1), timeout=20)
    assert rec.status == TaskState.FAILED
    assert rec.error == "unknown task 'no_such_task'; known: add, echo, fail, multiply, sleep, sub"
    assert rec.attempts == 1


def test_wrong_arguments_fail_with_the_type_error(client: Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    rec = client.wait(client.submit("add", 1), timeout=20)
    assert rec.status == TaskState.FAILED
    assert rec.error is not None and rec.error.startswith("TypeError: add() missing 1 required positional argument")
