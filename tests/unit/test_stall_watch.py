"""The stall watch re-seeks a partition that stopped moving, and leaves alone what is not fetched by design."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from taskq.kafka.kafka_python.flow import StallWatch

TP = TopicPartition("t", 3)


@dataclass
class _State:  # the fields of kafka-python's TopicPartitionState the watch reads
    position: OffsetAndMetadata
    highwater: int | None
    paused: bool = False


@dataclass
class _Subscription:
    assignment: dict[TopicPartition, _State]


@dataclass
class _Consumer:
    state: _State
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    @property
    def _subscription(self) -> _Subscription:
        return _Subscription({TP: self.state})

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _watch() -> StallWatch:
    return StallWatch(log=logging.getLogger("test"), stall_seconds=15)


def _stuck_consumer() -> _Consumer:
    return _Consumer(_State(OffsetAndMetadata(40, "", -1), highwater=86))


def test_a_partition_with_waiting_records_that_does_not_move_is_reseeked_after_the_limit() -> None:
    watch, consumer = _watch(), _stuck_consumer()
    for now in (0.0, 10.0, 14.9):
        watch.check(consumer, paused=False, now=now)
    assert consumer.seeks == []
    watch.check(consumer, paused=False, now=15.0)
    assert consumer.seeks == [(TP, 40)] and watch.resets == 1


def test_a_moving_partition_is_left_alone() -> None:
    watch, consumer = _watch(), _stuck_consumer()
    for i, now in enumerate((0.0, 10.0, 20.0, 30.0)):
        consumer.state.position = OffsetAndMetadata(40 + i, "", -1)
        watch.check(consumer, paused=False, now=now)
    assert consumer.seeks == []


def test_nothing_counts_while_paused_or_rebalancing() -> None:
    watch, consumer = _watch(), _stuck_consumer()
    watch.check(consumer, paused=False, now=0.0)
    watch.check(consumer, paused=False, rebalancing=True, now=14.0)  # kafka-python fetches nothing now
    watch.check(consumer, paused=False, now=20.0)
    watch.check(consumer, paused=True, now=30.0)
    watch.check(consumer, paused=False, now=34.0)
    assert consumer.seeks == []  # the clock restarted at 20 and again at 34
