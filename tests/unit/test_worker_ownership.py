"""The worker's partition ownership follows the consumer's assignment even without callbacks."""

from __future__ import annotations

import logging

import pytest
from kafka import TopicPartition

from taskq.registry import Registry
from taskq.settings import Settings
from taskq.worker import Worker


class _Consumer:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", p) for p in self.partitions}


@pytest.fixture
def worker() -> Worker:
    return Worker(Settings(), worker_id="w1", registry=Registry.load([]))


def test_partitions_assigned_without_a_callback_are_adopted_on_the_second_check(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = _Consumer({0, 1, 2})
    worker._assign({0})
    with caplog.at_level(logging.WARNING):
        worker._reconcile(consumer)
        assert set(worker._owned) == {0}  # a callback may still be on its way
        worker._reconcile(consumer)
    assert set(worker._owned) == {0, 1, 2}
    assert "without an assignment callback" in caplog.text


def test_a_late_callback_is_not_reported_as_missing(worker: Worker, caplog: pytest.LogCaptureFixture) -> None:
    consumer = _Consumer({0, 1})
    with caplog.at_level(logging.WARNING):
        worker._reconcile(consumer)
        worker._assign({0, 1})  # the listener ran in between
        worker._reconcile(consumer)
    assert set(worker._owned) == {0, 1} and "without" not in caplog.text


def test_partitions_the_consumer_no_longer_has_are_released(worker: Worker) -> None:
    worker._assign({0, 1, 2})
    epoch_of_0 = worker._owned[0]
    worker._reconcile(_Consumer({0}))
    assert worker._owned == {0: epoch_of_0}
