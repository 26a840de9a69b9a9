"""The worker's partition ownership follows the consumer's assignment even without callbacks."""

from __future__ import annotations

import logging

import pytest

from taskq.kafka import Record
from taskq.models import TaskMessage
from taskq.registry import Registry
from taskq.settings import Settings
from taskq.store import StartDecision
from taskq.worker import Worker
from taskq.worker.runner import _Lane


class _Consumer:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[int]:
        return set(self.partitions)


def _records(partition: int, *offsets: int) -> list[Record]:
    return [Record(partition, o, None, TaskMessage(id=f"{o:032x}", task="add", args=[o, 1]).to_bytes())
            for o in offsets]


def _lane(worker: Worker, consumer: object) -> _Lane:
    """The worker's normal lane, reading from ``consumer``."""
    worker._normal.consumer = consumer  # type: ignore[assignment]
    return worker._normal


@pytest.fixture
def worker() -> Worker:
    return Worker(Settings(), worker_id="w1", registry=Registry.load([]))


def test_partitions_assigned_without_a_callback_are_adopted_on_the_second_check(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = _Consumer({0, 1, 2})
    worker._assign({0}, worker._normal)
    with caplog.at_level(logging.WARNING):
        worker._reconcile(_lane(worker, consumer))
        assert set(worker._normal.owned) == {0}  # a callback may still be on its way
        worker._reconcile(_lane(worker, consumer))
    assert set(worker._normal.owned) == {0, 1, 2}
    assert "without an assignment callback" in caplog.text


def test_a_late_callback_is_not_reported_as_missing(worker: Worker, caplog: pytest.LogCaptureFixture) -> None:
    consumer = _Consumer({0, 1})
    with caplog.at_level(logging.WARNING):
        worker._reconcile(_lane(worker, consumer))
        worker._assign({0, 1}, worker._normal)  # the listener ran in between
        worker._reconcile(_lane(worker, consumer))
    assert set(worker._normal.owned) == {0, 1} and "without" not in caplog.text


def test_partitions_the_consumer_no_longer_has_are_released(worker: Worker) -> None:
    worker._assign({0, 1, 2}, worker._normal)
    epoch_of_0 = worker._normal.owned[0]
    worker._reconcile(_lane(worker, _Consumer({0})))
    assert set(worker._normal.owned) == {0, 1, 2}  # a revocation callback may still be on its way
    worker._reconcile(_lane(worker, _Consumer({0})))
    assert worker._normal.owned == {0: epoch_of_0}


def test_a_partition_caught_between_assignment_and_its_callback_is_not_released(worker: Worker) -> None:
    worker._assign({0, 1}, worker._normal)  # the callback ran after the consumer's assignment was read
    worker._reconcile(_lane(worker, _Consumer({0})))
    worker._reconcile(_lane(worker, _Consumer({0, 1})))  # next look: the consumer has it
    worker._reconcile(_lane(worker, _Consumer({0, 1})))
    assert set(worker._normal.owned) == {0, 1}


def test_records_fetched_before_the_assignment_callback_are_taken_not_dropped(worker: Worker) -> None:
    consumer = _Consumer({0, 1})
    worker._assign({0}, worker._normal)
    worker._receive_all(_lane(worker, consumer), _records(1, 7, 8, 9))
    # Partition 1 is the consumer's but its callback has not run: the worker adopts it and runs the records.
    assert 1 in worker._normal.owned and [i.offset for i in worker._to_start] == [7, 8, 9]
    epoch = worker._normal.owned[1]
    worker._assign({1}, worker._normal)  # the late callback changes nothing
    assert worker._normal.owned[1] == epoch and worker._normal.tracker.unfinished() == 3


def test_records_of_a_partition_the_consumer_gave_up_are_left_to_its_new_owner(worker: Worker) -> None:
    consumer = _Consumer({0})
    worker._assign({0}, worker._normal)
    worker._receive_all(_lane(worker, consumer), _records(3, 4))
    assert 3 not in worker._normal.owned and worker._to_start == []


def test_a_run_handed_back_for_a_task_this_worker_already_runs_waits_instead_of_running_twice(
    worker: Worker,
) -> None:
    worker._assign({0}, worker._normal)
    worker._receive_all(_lane(worker, _Consumer({0})), _records(0, 5))
    item = worker._to_start[0]
    worker._active.add(item.msg.id)  # the same task is running in this worker (a duplicate message)
    worker._started([item], [StartDecision("run", 1)], now=100.0)
    assert worker._claimed == 0 and worker._to_start == [item] and item.not_before > 100.0


class _PausingConsumer(_Consumer):
    """The seam's pause semantics: pause_all covers the partitions assigned now; newcomers arrive unpaused."""

    def __init__(self, partitions: set[int]) -> None:
        super().__init__(partitions)
        self.held: set[int] = set()

    def rebalance(self, partitions: set[int]) -> None:
        self.held &= partitions
        self.partitions = partitions

    def pause_all(self) -> None:
        self.held |= self.partitions

    def resume_all(self) -> None:
        self.held = set()


def test_partitions_assigned_while_the_window_is_full_are_paused_and_all_resume_when_a_slot_frees(
    worker: Worker,
) -> None:
    consumer = _PausingConsumer({0, 1, 2})
    assert worker._flow_control(_lane(worker, consumer), free=0) is True
    assert consumer.held == {0, 1, 2}
    consumer.rebalance({1, 2, 5})  # 0 moved away, 5 arrives unpaused, 1 and 2 stay paused
    assert worker._flow_control(_lane(worker, consumer), free=0) is True
    assert consumer.held == {1, 2, 5}  # the window is still full: the newcomer waits too
    consumer.rebalance({1, 2, 5, 7})
    assert worker._flow_control(_lane(worker, consumer), free=3) is False
    assert consumer.held == set()  # every partition flows again, not only the unpaused newcomer
