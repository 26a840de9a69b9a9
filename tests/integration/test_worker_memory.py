"""The worker on the in-memory transport (real Redis, no Kafka): its logic, fast and deterministic."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from taskq.client import Client
from taskq.kafka.memory import MemoryBroker, MemoryTransport
from taskq.models import TaskState
from taskq.registry import Registry
from taskq.settings import Settings
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
