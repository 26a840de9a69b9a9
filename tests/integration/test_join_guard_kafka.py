"""kafka-python 3.0.12 drops a group join that completes between two polls; the worker's guard rejoins.

Against real Kafka: a leader whose topic grows must rejoin; with polls much shorter than a join
(1 ms every 200 ms) a join can only complete while nobody polls, so kafka-python discards every
finished join and the member keeps its old partitions. That holds however busy the machine is (a
join takes network round trips, never under 1 ms), so the test without the guard is deterministic.
The worker's JoinGuard (long polls while rebalancing, a rejoin when a result was dropped) gets the
member all six partitions with the very same poll pattern. The stuck state itself (rebalancing
with no rejoin wanted) is driven deterministically in tests/unit/test_join_guard.py.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewPartitions
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from taskq.kafka import ensure_topics
from taskq.kafka.kafka_python.join_guard import JOIN_POLL_MS, JoinGuard
from taskq.settings import Settings


def _grow_and_poll(settings: Settings, *, guard: JoinGuard | None, seconds: float) -> int:
    s = settings.model_copy(update={"partitions": 2})
    ensure_topics(s)
    c = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=s.group_id, enable_auto_commit=False,
                      partition_assignment_strategy=[CooperativeStickyAssignor], session_timeout_ms=10_000,
                      heartbeat_interval_ms=2_000, metadata_max_age_ms=500)
    try:
        c.subscribe([s.tasks_topic])
        # The first join with polls long enough to be waiting when it completes (the guard's own
        # rule): short polls here lose the join to the very race under test on a busy machine.
        deadline = time.monotonic() + 120
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(timeout_ms=JOIN_POLL_MS * 2)
        assert len(c.assignment()) == 2
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        try:
            admin.create_partitions({s.tasks_topic: NewPartitions(total_count=6)})
        finally:
            admin.close()
        deadline = time.monotonic() + seconds
        while len(c.assignment()) < 6 and time.monotonic() < deadline:
            c.poll(timeout_ms=guard.poll_timeout(c, 1) if guard else 1)
            if guard:
                guard.check(c)
            time.sleep(0.2)
        return len(c.assignment())
    finally:
        c.close(autocommit=False)


def test_a_dropped_group_join_is_redone_by_the_guard(settings: Settings) -> None:
    guard = JoinGuard(log=logging.getLogger("test"), stuck_seconds=1.0)
    # Returns as soon as the six are owned; the deadline only bounds a failure.
    assert _grow_and_poll(settings, guard=guard, seconds=90) == 6


def test_without_the_guard_polls_shorter_than_a_join_never_take_the_new_partitions(settings: Settings) -> None:
    # If this fails because the member got all six, kafka-python fixed the race: the guard can go.
    assert _grow_and_poll(settings, guard=None, seconds=6) == 2
