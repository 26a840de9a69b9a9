"""The client-neutral stall watch: a quiet partition with records waiting is re-sought, nothing else is."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from taskq.kafka.progress import FetchWatch, PartitionProbe


@dataclass
class _Broker:
    high: dict[int, int]
    committed: dict[int, int] = field(default_factory=dict)
    seeks: list[tuple[int, int]] = field(default_factory=list)
    asked: int = 0
    broken: bool = False

    def probe(self) -> PartitionProbe:
        def high(p: int) -> int | None:
            self.asked += 1
            if self.broken:
                raise RuntimeError("broker away")
            return self.high.get(p)

        return PartitionProbe(high, lambda p: self.committed.get(p, 0), lambda p, o: self.seeks.append((p, o)))


def _watch(broker: _Broker) -> FetchWatch:
    return FetchWatch(broker.probe(), logging.getLogger("test"), stall_seconds=15)


def test_a_partition_that_delivers_nothing_while_records_wait_is_resought_at_its_next_offset() -> None:
    broker = _Broker(high={3: 90})
    watch = _watch(broker)
    watch.delivered(3, 40, now=0.0)
    for now in (1.0, 10.0, 14.9):
        watch.check({3}, now=now)
    assert broker.seeks == []
    watch.check({3}, now=15.0)
    assert broker.seeks == [(3, 41)] and watch.resets == 1
    watch.check({3}, now=20.0)  # asked again only a whole stall period later
    assert broker.seeks == [(3, 41)]
    watch.check({3}, now=30.0)
    assert broker.seeks == [(3, 41), (3, 41)]


def test_a_partition_never_delivered_is_resought_at_the_groups_committed_offset() -> None:
    broker = _Broker(high={5: 50}, committed={5: 12})
    watch = _watch(broker)
    watch.check({5}, now=0.0)
    watch.check({5}, now=15.0)
    assert broker.seeks == [(5, 12)]


def test_a_partition_that_keeps_delivering_or_has_nothing_waiting_is_left_alone() -> None:
    broker = _Broker(high={1: 100, 2: 7})
    watch = _watch(broker)
    watch.delivered(2, 6, now=0.0)  # at its end
    for i in range(10):
        now = i * 10.0
        watch.delivered(1, i, now=now)
        watch.check({1, 2}, now=now)
    assert broker.seeks == []


def test_time_paused_does_not_count_as_quiet() -> None:
    broker = _Broker(high={0: 10})
    watch = _watch(broker)
    watch.check({0}, now=0.0)
    watch.paused()
    watch.check({0}, now=20.0)  # quiet counts from the resume
    assert broker.seeks == []
    watch.check({0}, now=35.0)
    assert broker.seeks == [(0, 0)]


def test_a_revoked_partition_is_forgotten_and_its_new_start_is_the_commit() -> None:
    broker = _Broker(high={4: 30}, committed={4: 25})
    watch = _watch(broker)
    watch.delivered(4, 9, now=0.0)
    watch.forget({4})
    watch.check({4}, now=1.0)
    watch.check({4}, now=16.0)
    assert broker.seeks == [(4, 25)]


def test_a_failing_probe_never_raises_and_ends_the_round_and_few_partitions_are_probed_per_check() -> None:
    broker = _Broker(high={p: 10 for p in range(12)}, broken=True)
    watch = _watch(broker)
    watch.check(set(range(12)), now=0.0)
    watch.check(set(range(12)), now=15.0)
    assert broker.asked == 1 and broker.seeks == []  # Kafka away: one probe waits, not twelve
    broker.broken = False
    watch.check(set(range(12)), now=15.5)  # the ones not asked yet take their turn, a few at a time
    assert len(broker.seeks) == watch.max_probes
