"""Retries, dead letters, time limits, cancellation, idempotency and delays against real Kafka and Redis."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from taskq.client import Client
from taskq.devstack import RedisServer, free_port
from taskq.kafka import ensure_topics, transport
from taskq.models import TaskState
from taskq.settings import Settings
from tests.helpers import Services, WorkerFactory, make_settings, wait_all, wait_for

TASKS = ["--tasks", "tests.sample_tasks"]

pytestmark = pytest.mark.both_clients


def _dead_letters(settings: Settings, n: int, timeout: float = 20) -> list[dict]:  # type: ignore[type-arg]
    consumer = KafkaConsumer(settings.dead_topic, bootstrap_servers=settings.kafka_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000)
    out: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for rec in consumer:
            out.append(orjson.loads(rec.value))
    consumer.close()
    return out



def _end_offsets(settings: Settings) -> dict[int, int]:
    """Each partition's end offset of the tasks topic: how many messages were ever produced."""
    from kafka import TopicPartition

    c = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(settings.tasks_topic, p) for p in c.partitions_for_topic(settings.tasks_topic) or ()]
        return {tp.partition: off for tp, off in c.end_offsets(parts).items()}
    finally:
        c.close()

def test_a_failing_task_is_retried_with_backoff_and_then_dead_lettered(
    client: Client, settings: Settings, start_worker: WorkerFactory
) -> None:
    start_worker("w1")
    tid = client.submit("fail", "always", _max_retries=2)
    rec = client.wait(tid, timeout=30)
    assert rec.status == TaskState.DEAD and rec.attempts == 3
    assert [h["outcome"] for h in rec.history] == ["retry", "retry", "dead"]
    gaps = [rec.history[i + 1]["started_at"] - rec.history[i]["finished_at"] for i in range(2)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.9  # base 1 s x 2^(n-1) x jitter [0.5, 1.5)
    letters = _dead_letters(settings, 1)
    assert letters[0]["id"] == tid and letters[0]["reason"] == "retries exhausted"
    assert letters[0]["error"] == "RuntimeError: always" and "Traceback" in letters[0]["traceback"]


def test_a_flaky_task_succeeds_on_a_later_attempt(client: Client, start_worker: WorkerFactory, tmp_path: Path) -> None:
    start_worker("w1", extra=TASKS)
    rec = client.wait(client.submit("flaky", str(tmp_path / "m"), 2), timeout=30)
    assert rec.status == TaskState.SUCCESS and rec.result == "ok after 3 runs" and rec.attempts == 3


def test_a_scheduled_retry_survives_a_restart_of_every_worker(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    w = start_worker("w1", extra=TASKS)
    tid = client.submit("later", str(tmp_path / "m"), 3.0)
    wait_for(lambda: client.get(tid).status == TaskState.RETRYING, timeout=20, what="the retry to be scheduled")
    w.kill()
    start_worker("w2", extra=TASKS)
    rec = client.wait(tid, timeout=30)
    assert rec.status == TaskState.SUCCESS and rec.worker == "w2" and rec.attempts == 2


def test_a_task_over_its_time_limit_is_killed_and_the_worker_keeps_serving(
    client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1", extra=TASKS)
    stuck = client.submit("spin", _timeout=1.0)
    ok = client.submit("add", 1, 1)
    assert client.wait(ok, timeout=20).result == 2
    rec = client.wait(stuck, timeout=20)
    assert rec.status == TaskState.FAILED
    assert rec.error == "TaskTimeout: the task exceeded its time limit of 1s and was killed"
    assert client.wait(client.submit("multiply", 3, 3), timeout=20).result == 9
    quick = client.wait(client.submit("add", 2, 2, _timeout=5), timeout=20)  # runs in a child, too
    assert quick.result == 4


def test_a_retrying_task_can_be_cancelled_and_is_not_run_again(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    w = start_worker("w1", extra=TASKS)
    tid = client.submit("later", str(tmp_path / "m"), 3.0)
    wait_for(lambda: client.get(tid).status == TaskState.RETRYING, timeout=20, what="retrying")
    assert client.cancel(tid).status == TaskState.CANCELLED
    # The scheduler drops a cancelled entry when it falls due instead of producing it.
    scheduled = [client.store.key("scheduled"), client.store.key("scheduling")]
    wait_for(lambda: all(client.store.r.zscore(k, tid) is None for k in scheduled), timeout=20,
             what="the scheduler to drop the cancelled retry")
    assert client.get(tid).status == TaskState.CANCELLED
    assert w.output().count(f"Received Task ID: {tid}") == 1


def test_the_same_idempotency_key_returns_the_same_task_and_enqueues_once(
    client: Client, start_worker: WorkerFactory
) -> None:
    w = start_worker("w1")
    a = client.submit("add", 1, 2, _idempotency_key="order-42")
    b = client.submit("add", 1, 2, _idempotency_key="order-42")
    assert a == b
    assert client.wait(a, timeout=20).result == 3
    # One message on the topic, run once.
    assert sum(_end_offsets(client.settings).values()) == 1
    assert client.get(a).attempts == 1
    assert w.output().count("Received Task ID:") == 1
    assert client.submit("add", 1, 2, _idempotency_key="order-43") != a


def test_a_delayed_task_runs_no_earlier_than_its_delay(client: Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    tid = client.submit("add", 5, 6, _delay=2.0)
    rec = client.wait(tid, timeout=20)
    assert rec.result == 11 and rec.started_at - rec.created_at >= 2.0  # type: ignore[operator]


def test_an_undecodable_message_is_dead_lettered_and_nothing_else_is_affected(
    client: Client, settings: Settings, start_worker: WorkerFactory
) -> None:
    start_worker("w1")
    producer = transport(settings).producer()
    producer.send_raw(settings.tasks_topic, b"\x00garbage", key=b"k")
    producer.send_raw(settings.tasks_topic, b'{"v": 1, "id": "x", "task": "add", "args": "nope"}', key=b"k")
    producer.close()
    assert client.wait(client.submit("add", 1, 1, _key="k"), timeout=20).result == 2
    reasons = sorted(d["reason"] for d in _dead_letters(settings, 2))
    assert reasons[0].startswith("field 'args' must be a list") and reasons[1].startswith("not JSON")


def test_an_oversize_result_fails_with_a_clear_message(
    services: Services, start_worker: WorkerFactory, kafka_client: str
) -> None:
    s = make_settings(services, max_result_bytes=1000, kafka_client=kafka_client)
    start_worker("w1", extra=TASKS, settings_=s)
    with Client(s) as client:
        rec = client.wait(client.submit("big_result", 5000), timeout=20)
    assert rec.status == TaskState.FAILED
    assert rec.error == "result is 5002 bytes; the limit is 1000 (TASKQ_MAX_RESULT_BYTES)"


def test_a_redis_outage_longer_than_the_heartbeat_ttl_runs_nothing_twice(
    services: Services, tmp_path: Path, start_worker: WorkerFactory, kafka_client: str
) -> None:
    redis = RedisServer(data_dir=tmp_path / "redis", port=free_port())
    redis.start()
    settings = make_settings(services, redis_url=redis.url, kafka_client=kafka_client)
    ensure_topics(settings)
    client = Client(settings)
    try:
        for wid in ("w1", "w2"):  # 6 slots each: the 6 long tasks run at once however they hash
            start_worker(wid, settings_=settings, concurrency=6)
        long = [client.submit("sleep", 8) for _ in range(6)]
        short = [client.submit("sleep", 0.2) for _ in range(20)]
        wait_for(lambda: sum(client.get(t).status == TaskState.RUNNING for t in long) == 6, timeout=30,
                 what="the long tasks to run")
        redis.stop()
        # Down for twice the heartbeat TTL (3 s in tests): every worker's liveness key expires.
        outage_end = time.monotonic() + 2 * settings.heartbeat_ttl + 4
        while time.monotonic() < outage_end:
            time.sleep(0.2)
        redis.start()
        store = client.store
        wait_for(lambda: {w.id for w in store.workers() if w.status == "alive"} >= {"w1", "w2"}, timeout=60,
                 what="both workers to register again")
        records = wait_all(client, long + short, timeout=90)
        assert all(r.status == TaskState.SUCCESS for r in records), [(r.id, r.status) for r in records]
        assert all(r.attempts == 1 for r in records), [(r.id, r.attempts, r.history) for r in records if r.attempts > 1]
    finally:
        client.close()
        redis.stop()
