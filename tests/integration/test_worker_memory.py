"""The worker on the in-memory transport (real Redis, no Kafka): its logic, fast and deterministic."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from taskq.client import Client
from taskq.kafka.memory import MemoryBroker, MemoryTransport
from taskq.models import TaskState
from taskq.registry import Registry
from taskq.settings import Settings
from taskq.worker import Worker
from tests.conftest import wait_all, wait_for


class _Running:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def workers(settings: Settings, broker: MemoryBroker) -> Iterator[list[_Running]]:
    running: list[_Running] = []
    yield running
    for r in running:
        if r.thread.is_alive():
            r.stop()


def _start(settings: Settings, broker: MemoryBroker, workers: list[_Running], wid: str) -> Worker:
    w = Worker(settings, worker_id=wid, registry=Registry.load([]), kafka=MemoryTransport(settings, broker))
    workers.append(_Running(w))
    return w


def test_two_workers_share_the_partitions_and_every_task_runs_once_through_a_graceful_handover(
    settings: Settings, broker: MemoryBroker, workers: list[_Running]
) -> None:
    a = _start(settings, broker, workers, "mem-a")
    wait_for(lambda: len(a._owned) == settings.partitions, timeout=10, what="mem-a to own every partition")
    b = _start(settings, broker, workers, "mem-b")
    wait_for(lambda: a._owned and b._owned and len(a._owned) + len(b._owned) == settings.partitions,
             timeout=10, what="the partitions to be split")
    client = Client(settings, producer=MemoryTransport(settings, broker).producer())
    try:
        ids = [client.submit("add", i, 1) for i in range(60)]
        records = wait_all(client, ids, timeout=30)
        assert [r.result for r in records] == [i + 1 for i in range(60)]
        assert {r.worker for r in records} == {"mem-a", "mem-b"}
        workers[0].stop()  # mem-a leaves: mem-b takes everything over from the committed offsets
        wait_for(lambda: len(b._owned) == settings.partitions, timeout=10, what="mem-b to own every partition")
        more = [client.submit("add", i, 2) for i in range(30)]
        later = wait_all(client, more, timeout=30)
        assert all(r.status is TaskState.SUCCESS and r.worker == "mem-b" and r.attempts == 1 for r in later)
        assert all(client.get(i).attempts == 1 for i in ids)  # nothing of the first batch ran again
    finally:
        client.close()
