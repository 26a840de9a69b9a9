"""Scaling the worker fleet up and down under load, as `kubectl scale` does, against the real broker."""

from __future__ import annotations

import time

from kafka.partitioner.default import murmur2

from taskq.client import Client, TaskRequest
from taskq.models import TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import Services, WorkerFactory, make_settings, wait_for


def _alive_with_partitions(store: Store, ids: set[str]) -> bool:
    ws = {w.id: w for w in store.workers()}
    return all(i in ws and ws[i].status == "alive" and ws[i].partitions for i in ids)


def _diagnosis(client: Client, store: Store, settings: Settings, unfinished: list[str]) -> str:
    """Where the unfinished tasks wait: their partitions, the lag there, and who holds what."""
    parts: dict[int, int] = {}
    for tid in unfinished:
        p = (murmur2(tid.encode()) & 0x7FFFFFFF) % settings.partitions
        parts[p] = parts.get(p, 0) + 1
    states: dict[str, int] = {}
    for tid in unfinished:
        rec = client.get(tid)
        states[rec.status.value] = states.get(rec.status.value, 0) + 1
    held = {w.id: (w.status, w.partitions) for w in store.workers()}
    return f"unfinished by partition {parts}, by state {states}; lag {client.stats().lag}; workers {held}"


def test_scaling_three_to_five_to_one_under_load_runs_every_task_once(
    client: Client, store: Store, start_worker: WorkerFactory, settings: Settings
) -> None:
    """The e2e scenario 'scale 3 -> 5 -> 1 under load' without the cluster: two workers join while
    tasks flow, then four leave at once (SIGTERM, as a scale-down sends), and the last one finishes
    everything, each task once. With the default client (librdkafka, KIP-848), the one that once
    stranded a partition's tasks in this scenario on the cluster; kafka-python's SIGTERM hand-over
    is test_pipeline's, its scale-down the e2e's when the fleet runs it."""
    workers = {i: start_worker(f"w{i}", concurrency=4) for i in (1, 2, 3)}
    wait_for(lambda: _alive_with_partitions(store, {"w1", "w2", "w3"}), timeout=30, what="3 workers")
    ids = client.submit_many([TaskRequest("sleep", (0.15,)) for _ in range(300)])

    def finished() -> int:
        return sum(w.processed for w in store.workers())

    wait_for(lambda: finished() >= 30, timeout=60, what="30 tasks to finish")
    for i in (4, 5):
        workers[i] = start_worker(f"w{i}", concurrency=4, wait_ready=False)
    wait_for(lambda: _alive_with_partitions(store, {f"w{i}" for i in range(1, 6)}), timeout=60,
             what="5 workers holding partitions")
    for i in (2, 3, 4, 5):
        workers[i].terminate()
    for i in (2, 3, 4, 5):
        assert workers[i].wait(timeout=settings.shutdown_grace + 30) == 0, workers[i].output()[-2000:]
    left_at = time.monotonic()

    deadline = left_at + 120
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        pending = [tid for tid in pending if not client.get(tid).status.terminal]
        if pending:
            time.sleep(0.5)
    assert not pending, _diagnosis(client, store, settings, pending) + "\n" + workers[1].output()[-4000:]
    records = [client.get(tid) for tid in ids]
    assert all(r.status == TaskState.SUCCESS for r in records), [(r.id, r.status) for r in records
                                                                 if r.status != TaskState.SUCCESS]
    assert all(r.attempts == 1 for r in records), [(r.id, r.attempts) for r in records if r.attempts > 1]
    print(f"\nlast task finished {time.monotonic() - left_at:.1f}s after four of five workers left "
          f"({settings.kafka_client}, {settings.consumer_group_protocol} protocol)")


def test_a_fleet_that_switches_kafka_client_pod_by_pod_runs_every_task_once(
    services: Services, start_worker: WorkerFactory
) -> None:
    """Changing `kafka.client` rolls the workers one at a time, so for a while one group holds
    members of both clients (librdkafka's KIP-848 members and kafka-python's classic ones): the
    broker must share the partitions between them and every task must run, once. (The e2e rolls
    a cluster's fleet both ways.)"""
    first, then = "confluent", "kafka-python"
    old_settings = make_settings(services, kafka_client=first)
    new_settings = old_settings.model_copy(update={"kafka_client": then})
    client = Client(old_settings)
    store = Store(old_settings)
    try:
        old = [start_worker(f"old{i}", settings_=old_settings) for i in (1, 2, 3)]
        wait_for(lambda: _alive_with_partitions(store, {"old1", "old2", "old3"}), timeout=30, what="3 workers")
        ids = client.submit_many([TaskRequest("sleep", (0.1,)) for _ in range(200)])
        for i, w in enumerate(old, start=1):
            start_worker(f"new{i}", settings_=new_settings, wait_ready=False)
            w.terminate()
            assert w.wait(timeout=old_settings.shutdown_grace + 30) == 0, w.output()[-2000:]
        wait_for(lambda: _alive_with_partitions(store, {"new1", "new2", "new3"}), timeout=60,
                 what="the new workers holding partitions")
        deadline = time.monotonic() + 120
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            pending = [tid for tid in pending if not client.get(tid).status.terminal]
            if pending:
                time.sleep(0.5)
        assert not pending, _diagnosis(client, store, new_settings, pending)
        records = [client.get(tid) for tid in ids]
        assert all(r.status == TaskState.SUCCESS and r.attempts == 1 for r in records), \
            [(r.id, r.status, r.attempts) for r in records if r.status != TaskState.SUCCESS or r.attempts > 1]
        assert {r.worker for r in records} & {"new1", "new2", "new3"}, "the new workers ran nothing"
    finally:
        client.close()
        store.close()
