"""A producer keeps working after its Kafka broker restarts (a private broker, stopped and started).

kafka-python 3.0.12 resets an idempotent producer's id when a batch it had sent expires and then
never asks for a new one: without taskq's rebuild every send after the restart timed out, for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq.devstack import KafkaServer, free_port
from taskq.errors import TaskqError
from taskq.kafka import ensure_topics, transport
from taskq.models import TaskMessage
from taskq.settings import Settings


def _returns(close: Callable[[], None]) -> None:
    """``close`` comes back instead of hanging on the absent broker (the bound only ends a hang)."""
    done = threading.Event()
    threading.Thread(target=lambda: (close(), done.set()), daemon=True).start()
    assert done.wait(60), "close() hung with the broker gone"

@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    server = KafkaServer(data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    server.start()
    yield server
    server.stop()


def _batch(n: int = 5) -> list[TaskMessage]:
    return [TaskMessage(id=f"{time.time_ns()}-{i}", task="add", args=[i, 1]) for i in range(n)]


pytestmark = pytest.mark.both_clients


@pytest.mark.timeout(180)
def test_a_producer_sends_again_after_its_broker_restarted(kafka: KafkaServer, kafka_client: str) -> None:
    settings = Settings(kafka_bootstrap=kafka.bootstrap, partitions=6, submit_timeout=3, kafka_client=kafka_client)
    ensure_topics(settings)
    producer = transport(settings).producer(client_id="restart-test")
    try:
        producer.send(_batch())
        kafka.stop()
        with pytest.raises(TaskqError):  # the broker is away: refused, within the submit timeout
            producer.send(_batch())
        kafka.start()
        deadline, sent = time.monotonic() + 60, False
        while not sent and time.monotonic() < deadline:
            try:
                producer.send(_batch())
                sent = True
            except TaskqError:
                time.sleep(0.5)
        assert sent, "the producer never sent again after the broker came back"
    finally:
        _returns(lambda: producer.close(timeout=1))


@pytest.mark.timeout(120)
def test_closing_a_producer_whose_broker_is_gone_returns_and_fails_what_is_undelivered(
    kafka: KafkaServer, kafka_client: str
) -> None:
    settings = Settings(kafka_bootstrap=kafka.bootstrap, partitions=6, submit_timeout=3, kafka_client=kafka_client)
    ensure_topics(settings)
    before = {t.name for t in threading.enumerate()}
    producer = transport(settings).producer(client_id="close-test")
    producer.send(_batch())
    kafka.stop()
    reports: list[Exception | None] = []
    producer.send_nowait(_batch(1)[0], key=None, on_delivery=reports.append)  # stays undelivered
    _returns(lambda: producer.close(timeout=0.5))
    assert len(reports) == 1 and isinstance(reports[0], Exception)  # failed, not left hanging
    # The client's own threads stop with it (kafka-python's sender thread once stayed behind).
    deadline = time.monotonic() + 5
    while {t.name for t in threading.enumerate() if t.is_alive()} - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {t.name for t in threading.enumerate() if t.is_alive()} - before == set()
