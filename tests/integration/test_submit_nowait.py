"""Pipelined submission (``Client.submit_nowait``) against the real broker and Redis."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from taskq.client import Client
from taskq.errors import BrokerError, SubmitFailed, TaskNotFound
from taskq.kafka import OnDelivery
from taskq.models import TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import Services, WorkerFactory, keys_on, make_settings, wait_all


def test_pipelined_submissions_are_recorded_once_acked_and_all_run(
    client: Client, store: Store, start_worker: WorkerFactory
) -> None:
    subs = [client.submit_nowait("add", i, 1) for i in range(300)]
    assert len({s.id for s in subs}) == 300
    client.flush()
    assert all(s.done() and s.result(0) == s.id for s in subs)
    # Recorded as queued before any worker exists: the record comes from the submitter, not a worker.
    assert store.counts()["queued"] == 300
    start_worker("p1")
    records = wait_all(client, [s.id for s in subs], timeout=60)
    assert [r.result for r in records] == [i + 1 for i in range(300)]
    assert all(r.status is TaskState.SUCCESS and r.attempts == 1 for r in records)


def test_pipelined_submission_keeps_idempotency_and_delay_options(client: Client, store: Store) -> None:
    key = f"order-{uuid.uuid4().hex}"
    first = client.submit_nowait("add", 1, 2, _idempotency_key=key)
    again = client.submit_nowait("add", 1, 2, _idempotency_key=key)
    delayed = client.submit_nowait("add", 3, 4, _delay=3600)
    client.flush()
    assert again.result(0) == first.id
    rec = store.get(delayed.id)
    assert rec.status is TaskState.QUEUED and rec.eta is not None and rec.eta > rec.created_at + 3000
    assert store.counts()["queued"] == 2


def test_a_refused_pipelined_submission_fails_flush_and_leaves_nothing_recorded(services: Services) -> None:
    # A topic whose messages may be at most 600 bytes: Kafka refuses the large one asynchronously.
    s = make_settings(services)
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    admin.create_topics([NewTopic(s.tasks_topic, 2, 1, topic_configs={"max.message.bytes": "600"})])
    admin.close()
    key = f"big-{uuid.uuid4().hex}"
    # On two partitions, so never in one batch: librdkafka fails a whole batch the broker refuses
    # (docs/kafka-clients.md), kafka-python splits it and sends the rest again.
    (small_key,), (big_key,) = keys_on([0], 2, 1), keys_on([1], 2, 1)
    with Client(s) as c:
        small = c.submit_nowait("echo", "ok", _key=small_key)
        big = c.submit_nowait("echo", "x" * 5000, _idempotency_key=key, _key=big_key)
        with pytest.raises(SubmitFailed, match="1 submission"):
            c.flush()
        assert small.result(0) == small.id
        with pytest.raises(SubmitFailed, match=big.id):
            big.result(0)
        assert c.get(small.id).status is TaskState.QUEUED
        with pytest.raises(TaskNotFound):
            c.get(big.id)
        # The idempotency key was released: the same key can be used again.
        retry = c.submit_nowait("echo", "fits", _idempotency_key=key)
        c.flush()
        assert retry.id != big.id and c.get(retry.id).status is TaskState.QUEUED
        # The waiting submit reports a refusal as one clear error, and the producer keeps working.
        with pytest.raises(BrokerError, match=r"(?i)message.?size.?too.?large"):  # each client names it its own way
            c.submit("echo", "y" * 5000)
        assert c.get(c.submit("echo", "small")).status is TaskState.QUEUED


class _FailingProducer:
    """Stands in for Kafka to fail every message after the call returned (the client-thread path)."""

    def __init__(self) -> None:
        self.pending: list[OnDelivery] = []

    def send_nowait(self, message: object, *, key: str | None, on_delivery: OnDelivery) -> None:
        self.pending.append(on_delivery)

    def flush(self, timeout: float) -> None:
        for report in self.pending:
            report(BrokerError("not leader for partition"))
        self.pending = []

    def close(self) -> None:
        pass


def test_close_raises_when_a_pipelined_submission_was_never_acknowledged(settings: Settings) -> None:
    c = Client(settings, producer=_FailingProducer())  # type: ignore[arg-type]
    sub = c.submit_nowait("add", 1, 1)
    assert not sub.done()
    with pytest.raises(SubmitFailed, match="not leader"):
        c.close()
    with pytest.raises(SubmitFailed):
        sub.result(0)


def test_an_error_leaving_the_with_block_is_not_replaced_by_a_flush_failure(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        pytest.raises(ValueError, match="the caller's own error"),
        Client(settings, producer=_FailingProducer()) as c,  # type: ignore[arg-type]
    ):
        c.submit_nowait("add", 1, 1)
        raise ValueError("the caller's own error")
    assert "1 submission(s) failed" in caplog.text


# --- the plain submit: Kafka's ack awaited, the record written by the recorder thread ---

def test_a_plain_submit_is_read_back_by_its_own_client_even_before_the_recorder_wrote_it(
    client: Client, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client as c:
        real_create = c.store.create
        started: list[str] = []

        def slow_create(messages: list, **kw: object) -> object:
            started.extend(m.id for m in messages)
            time.sleep(0.3)  # a slow Redis: the client's reads must wait for the record anyway
            return real_create(messages, **kw)

        monkeypatch.setattr(c.store, "create", slow_create)
        tid = c.submit("add", 1, 2)
        assert c.get(tid).status is TaskState.QUEUED
        assert tid in started
        ids = [c.submit("add", i, 0) for i in range(20)]
        assert c.cancel(ids[-1]).status is TaskState.CANCELLED
        c.flush()
        # Written for everyone else once flushed (close flushes too).
        assert {store.get(i).status for i in ids[:-1]} == {TaskState.QUEUED}


class _RefusingProducer(_FailingProducer):
    """Kafka refuses every message as soon as it is handed over."""

    def send_nowait(self, message: object, *, key: str | None, on_delivery: OnDelivery) -> None:
        on_delivery(BrokerError("Kafka error while trying to produce: MessageSizeTooLarge"))


def test_a_refused_plain_submit_raises_once_releases_its_idempotency_key_and_leaves_nothing(
    settings: Settings, store: Store
) -> None:
    key = f"refused-{uuid.uuid4().hex}"
    c = Client(settings, producer=_RefusingProducer())  # type: ignore[arg-type]
    with pytest.raises(BrokerError, match=r"(?i)message.?size.?too.?large"):  # each client names it its own way
        c.submit("add", 1, 2, _idempotency_key=key)
    c.flush()  # already reported to the caller: not a second failure
    assert store.counts().get("queued", 0) == 0
    assert store.reserve_idempotency(key, "someone-else", ttl=60) == "someone-else"
    c.close()
