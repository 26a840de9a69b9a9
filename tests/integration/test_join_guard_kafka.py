"""kafka-python 3.0.12 drops a group join that completes between two polls; the worker's guard rejoins.

Against real Kafka: a leader whose topic grows must rejoin; with polls much shorter than a join
(1 ms every 200 ms) kafka-python discards each finished join and the member stays "rebalancing"
with its old partitions for good. The worker's JoinGuard (long polls while rebalancing, and a
rejoin when the result was dropped) gets it all six partitions. If kafka-python fixes the race,
``stuck_seen`` turns false here: then the guard can go.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewPartitions
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.base import MemberState

from taskq.kafka import ensure_topics
from taskq.kafka.kafka_python.join_guard import JoinGuard
from taskq.settings import Settings


def _grow_and_poll(settings: Settings, *, guard: JoinGuard | None, seconds: float) -> tuple[int, bool]:
    s = settings.model_copy(update={"partitions": 2})
    ensure_topics(s)
    c = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=s.group_id, enable_auto_commit=False,
                      partition_assignment_strategy=[CooperativeStickyAssignor], session_timeout_ms=10_000,
                      heartbeat_interval_ms=2_000, metadata_max_age_ms=500)
    try:
        c.subscribe([s.tasks_topic])
        # A first join on a cold broker, with a build running beside the suite, has taken over 20 s.
        deadline = time.monotonic() + 60
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(timeout_ms=50)
        assert len(c.assignment()) == 2
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        try:
            admin.create_partitions({s.tasks_topic: NewPartitions(total_count=6)})
        finally:
            admin.close()
        stuck_seen = False
        deadline = time.monotonic() + seconds
        while len(c.assignment()) < 6 and time.monotonic() < deadline:
            c.poll(timeout_ms=guard.poll_timeout(c, 1) if guard else 1)
            co = c._coordinator
            stuck_seen |= co.state is MemberState.REBALANCING and not co.need_rejoin()
            if guard:
                guard.check(c)
            time.sleep(0.2)
        return len(c.assignment()), stuck_seen
    finally:
        c.close(autocommit=False)


def test_a_dropped_group_join_is_redone_by_the_guard(settings: Settings) -> None:
    guard = JoinGuard(log=logging.getLogger("test"), stuck_seconds=1.0)
    owned, stuck_seen = _grow_and_poll(settings, guard=guard, seconds=20)
    assert owned == 6
    assert stuck_seen  # the race happened, so the guard is what recovered it


def test_without_the_guard_kafka_python_leaves_the_member_rebalancing(settings: Settings) -> None:
    owned, stuck_seen = _grow_and_poll(settings, guard=None, seconds=6)
    assert stuck_seen and owned == 2
