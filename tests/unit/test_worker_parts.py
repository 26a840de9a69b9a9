"""The worker's parts on their own: outcome classification, dead letters, scheduler, heartbeat."""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import pytest

from taskq.errors import StoreUnavailable
from taskq.kafka import Record
from taskq.kafka.memory import MemoryTransport
from taskq.metrics import WorkerMetrics
from taskq.models import TaskMessage, TaskState
from taskq.registry import Registry, task
from taskq.settings import Settings
from taskq.worker.execute import Outcome
from taskq.worker.heartbeat import Heartbeat
from taskq.worker.outcomes import DeadLetters, classify
from taskq.worker.scheduler import Scheduler

LOG = logging.getLogger("test.worker.parts")


@pytest.fixture
def settings() -> Settings:
    return Settings(partitions=2, default_max_retries=0, retry_backoff=2.0, retry_backoff_max=5.0)


def _classify(settings: Settings, msg: TaskMessage, attempt: int, out: Outcome) -> Any:
    return classify(msg, attempt, out, registry=Registry.load([]), settings=settings, now=lambda: 1000.0,
                    jitter=lambda: 1.0)


def test_a_tasks_own_retry_backoff_wins_over_the_setting(settings: Settings) -> None:
    @task(name="own", max_retries=3, retry_backoff=0.25)
    def own() -> None: ...

    registry = Registry([own.__taskq_task__])
    out = classify(TaskMessage(id="o", task="own"), 2, Outcome(False, error="x"), registry=registry,
                   settings=settings, now=lambda: 1000.0, jitter=lambda: 1.0)
    assert out.due == 1000.0 + 0.5  # its own 0.25 s * 2, not the settings' 2 s


def test_outcomes_become_success_failed_retry_or_dead(settings: Settings) -> None:
    ok = _classify(settings, TaskMessage(id="a", task="add"), 1, Outcome(True, result=3))
    assert ok.status is TaskState.SUCCESS and ok.result == 3
    fatal = _classify(settings, TaskMessage(id="b", task="add", max_retries=5), 1,
                      Outcome(False, error="TypeError: bad", retryable=False))
    assert fatal.status is TaskState.FAILED  # no retry can fix bad arguments
    no_retries = _classify(settings, TaskMessage(id="c", task="add"), 1, Outcome(False, error="boom"))
    assert no_retries.status is TaskState.FAILED  # the default of 0 retries: failed, not dead
    retry = _classify(settings, TaskMessage(id="d", task="add", max_retries=3), 2, Outcome(False, error="boom"))
    assert retry.status is TaskState.RETRYING and retry.due == 1000.0 + 4.0  # add sets none: the settings' 2 s * 2
    unknown = _classify(settings, TaskMessage(id="d2", task="gone", max_retries=3), 3, Outcome(False, error="x"))
    assert unknown.due == 1000.0 + 5.0  # the settings' 2 s * 2**2 = 8, capped at retry_backoff_max
    asked = _classify(settings, TaskMessage(id="e", task="add", max_retries=3), 1,
                      Outcome(False, error="later", retry_delay=0.5))
    assert asked.due == 1000.5
    dead = _classify(settings, TaskMessage(id="f", task="add", max_retries=3), 4, Outcome(False, error="boom"))
    assert dead.status is TaskState.DEAD


def test_dead_letters_carry_the_task_or_the_raw_bytes(settings: Settings) -> None:
    t = MemoryTransport(settings)
    t.admin().ensure_topics()
    dl = DeadLetters(settings=settings, producer=t.producer(), metrics=WorkerMetrics(worker="w"), log=LOG,
                     worker_id="w")
    msg = TaskMessage(id="x1", task="add", args=[1, 2])
    assert dl.exhausted(msg, Outcome(False, error="boom", traceback="tb"), 4)
    dl.undecodable(Record(1, 7, b"k", b"\xff not json"), "not JSON")
    letters = [orjson.loads(r.value or b"") for r in t.broker.topics[settings.dead_topic][0]]
    assert letters[0]["id"] == "x1" and letters[0]["attempts"] == 4 and letters[0]["traceback"] == "tb"
    assert letters[1]["reason"] == "not JSON" and letters[1]["partition"] == 1 and letters[1]["offset"] == 7


def test_a_dead_letter_kafka_refuses_is_reported_for_a_retry(settings: Settings) -> None:
    t = MemoryTransport(settings)  # no topics: every produce is refused
    dl = DeadLetters(settings=settings, producer=t.producer(), metrics=WorkerMetrics(worker="w"), log=LOG,
                     worker_id="w")
    assert dl.exhausted(TaskMessage(id="x2", task="add"), Outcome(False, error="boom"), 2) is False


class _Store:
    def __init__(self, due: list[TaskMessage], *, down: bool = False) -> None:
        self.due = due
        self.down = down
        self.produced: list[str] = []
        self.beats: list[dict[str, Any]] = []
        self.prunes = 0

    def claim_due(self) -> list[TaskMessage]:
        if self.down:
            raise StoreUnavailable("Redis is unreachable")
        due, self.due = self.due, []
        return due

    def scheduled_produced(self, ids: list[str]) -> None:
        self.produced.extend(ids)

    def sweep_concurrency(self) -> int:
        if self.down:
            raise StoreUnavailable("Redis is unreachable")
        self.sweeps = getattr(self, "sweeps", 0) + 1
        return 0

    def heartbeat(self, worker_id: str, **fields: Any) -> None:
        if self.down:
            raise StoreUnavailable("Redis is unreachable")
        self.beats.append(fields)

    def prune(self) -> None:
        self.prunes += 1


def test_the_scheduler_produces_what_is_due_and_marks_it_produced(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    t = MemoryTransport(settings)
    t.admin().ensure_topics()
    store = _Store([TaskMessage(id="r1", task="add"), TaskMessage(id="r2", task="add")])
    sched = Scheduler(store=store, producer=t.producer(), log=LOG)  # type: ignore[arg-type]
    assert sched.tick() == 2 and store.produced == ["r1", "r2"]
    assert sum(len(p) for p in t.broker.topics[settings.tasks_topic]) == 2
    store.down = True
    with caplog.at_level(logging.WARNING):
        assert sched.tick() == 0 and sched.tick() == 0
    assert caplog.text.count("scheduler paused") == 1  # once per outage, not once per tick


def test_the_heartbeat_reports_its_fields_prunes_once_a_minute_and_survives_an_outage(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    store = _Store([])
    fields = {"lease": "l", "partitions": [0, 1], "concurrency": 4}
    hb = Heartbeat(store=store, worker_id="w", fields=lambda: fields, metrics=WorkerMetrics(worker="w"),  # type: ignore[arg-type]
                   log=LOG, interval=1.0, clock=lambda: now[0])
    assert hb.beat() and store.beats == [fields] and store.prunes == 0
    now[0] = 61.0
    assert hb.beat() and store.prunes == 1
    store.down = True
    with caplog.at_level(logging.INFO):
        assert not hb.beat() and not hb.beat()
        store.down = False
        assert hb.beat()
    assert caplog.text.count("heartbeat failed") == 1 and "Redis is back" in caplog.text
    stopped = threading.Event()
    stopped.set()
    hb.run(stopped)  # returns at once when already stopped
