"""Fuzzing the whole worker against real Kafka and Redis (hypothesis): batches of generated poison
messages interleaved with valid tasks go to the tasks topic while worker processes run.

Invariant: no worker process exits; every poison message is accounted for (a dead letter naming its
partition and offset, or a task record it decoded into, in a terminal state); every valid task
succeeds with exactly its arguments. The corpus of inputs that once crashed something is sent first.
``make fuzz`` runs it longer (TASKQ_FUZZ_EXAMPLES batches), with each Kafka client.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer

from taskq.client import Client
from taskq.errors import InvalidMessage, StoreUnavailable
from taskq.models import TaskMessage, TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.fuzz.strategies import corpus, messages, valid_args
from tests.helpers import WorkerFactory, WorkerProc, wait_all, wait_for

BATCHES = int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "4"))
STORE_EXAMPLES = 300 * max(1, BATCHES // 4)
Message = tuple[bytes | None, list[tuple[str, bytes]]]


class DeadLetterReader:
    """Every dead letter so far, read incrementally from the dead-letter topic."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = KafkaConsumer(settings.dead_topic, bootstrap_servers=settings.kafka_servers,
                                      auto_offset_reset="earliest", enable_auto_commit=False,
                                      consumer_timeout_ms=500)
        self.by_offset: dict[tuple[int, int], dict[str, Any]] = {}

    def read(self) -> None:
        for rec in self.consumer:
            letter = orjson.loads(rec.value)
            if "offset" in letter:
                self.by_offset[(letter["partition"], letter["offset"])] = letter


def _decodes(value: bytes | None) -> TaskMessage | None:
    try:
        return TaskMessage.from_bytes(value)
    except InvalidMessage:
        return None


def send_batch(settings: Settings, poison: list[Message], valid: list[list[Any]]
               ) -> tuple[list[tuple[int, int, bytes | None]], dict[str, list[Any]]]:
    """Poison and valid messages interleaved; returns each poison's (partition, offset, value) and the
    valid tasks' ids with their arguments."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all", max_request_size=4 << 20)
    placed: list[tuple[int, int, bytes | None]] = []
    good: dict[str, list[Any]] = {}
    try:
        for i in range(max(len(poison), len(valid))):
            if i < len(poison):
                value, headers = poison[i]
                meta = producer.send(settings.tasks_topic, value=value, headers=headers,
                                     key=f"p{i}".encode()).get(timeout=30)
                placed.append((meta.partition, meta.offset, value))
            if i < len(valid):
                tid = f"fuzz-{uuid.uuid4().hex}"
                producer.send(settings.tasks_topic, key=tid.encode(), value=orjson.dumps(
                    {"v": 1, "id": tid, "task": "echo", "args": valid[i], "kwargs": {}, "gen": 0,
                     "created_at": time.time()}))
                good[tid] = valid[i]
        producer.flush()
    finally:
        producer.close()
    return placed, good


def check_batch(settings: Settings, client: Client, store: Store, workers: list[WorkerProc],
                dead: DeadLetterReader, placed: list[tuple[int, int, bytes | None]], good: dict[str, list[Any]]
                ) -> None:
    records = wait_all(client, list(good), timeout=120)
    wrong = [(r.id, r.status, r.error) for r in records if r.status is not TaskState.SUCCESS or r.result != good[r.id]]
    assert not wrong, wrong[:5]

    def accounted(p: int, o: int, value: bytes | None) -> bool:
        if (p, o) in dead.by_offset:
            return True
        msg = _decodes(value)
        if msg is None:
            return False
        rec = store.get_many([msg.id])[0]
        return rec is not None and rec.status.terminal

    def all_accounted() -> bool:
        dead.read()
        return all(accounted(*x) for x in placed)

    try:
        wait_for(all_accounted, timeout=120, what="every poison message to be dead-lettered or recorded")
    except AssertionError:
        missing = [(p, o, (v or b"")[:200]) for p, o, v in placed if not accounted(p, o, v)]
        raise AssertionError(f"not accounted for: {missing[:5]}") from None
    for w in workers:
        assert w.proc.poll() is None, w.output()[-4000:]


@pytest.mark.timeout(900)
@pytest.mark.both_clients
def test_no_generated_message_stops_a_worker_and_every_one_is_accounted_for(
    settings: Settings, client: Client, store: Store, start_worker: WorkerFactory
) -> None:
    workers = [start_worker(f"w{i}", concurrency=8) for i in (1, 2)]
    dead = DeadLetterReader(settings)
    try:
        kept = [(value, headers) for _, value, headers in corpus()]
        check_batch(settings, client, store, workers, dead, *send_batch(settings, kept, [[1], ["a"]]))

        @given(st.lists(messages(), min_size=40, max_size=60), st.lists(valid_args, min_size=20, max_size=30))
        @hsettings(max_examples=BATCHES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def batch(poison: list[Message], valid: list[list[Any]]) -> None:
            check_batch(settings, client, store, workers, dead, *send_batch(settings, poison, valid))

        batch()
    finally:
        dead.consumer.close()


def test_any_decodable_message_is_stored_and_started_or_refused_cleanly(store: Store) -> None:
    """decode -> store against the real Redis, in-process (fast): whatever decodes, the start script
    takes it, or the worker's isolation sees a clean error, never Redis being reported away."""

    def stored(message: Message) -> None:
        msg = _decodes(message[0])
        if msg is None:
            return
        msg = TaskMessage(id=f"{msg.id}-{uuid.uuid4().hex[:6]}", task=msg.task, args=msg.args, kwargs=msg.kwargs,
                          gen=msg.gen, max_retries=msg.max_retries, timeout=msg.timeout, created_at=msg.created_at,
                          priority=msg.priority, rate_key=msg.rate_key, concurrency_key=msg.concurrency_key)
        try:
            _, decisions = store.apply([], [msg], worker="fuzz", lease="L", max_lost_runs=lambda _m: 2)
        except StoreUnavailable:
            raise
        assert decisions[0].action in ("run", "skip", "held"), decisions
        rec = store.get(msg.id)
        assert (rec.args, rec.kwargs) == (msg.args, msg.kwargs)

    for _, value, headers in corpus():  # every input that once broke something, first
        stored((value, headers))

    @given(messages())
    @hsettings(max_examples=STORE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(message: Message) -> None:
        stored(message)

    check()
