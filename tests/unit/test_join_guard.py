"""The join guard re-joins a member kafka-python left rebalancing after a join nobody awaited."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from kafka.coordinator.base import MemberState

from taskq.kafka.kafka_python.join_guard import STUCK_CHECKS, JoinGuard


class FakeCoordinator:
    def __init__(self, state: MemberState, rejoin: bool) -> None:
        self.state = state
        self.rejoin = rejoin
        self.requests = 0

    def need_rejoin(self) -> bool:
        return self.rejoin

    def request_rejoin(self) -> None:
        self.requests += 1
        self.rejoin = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock) -> JoinGuard:
    return JoinGuard(log=logging.getLogger("test"), stuck_seconds=5.0, clock=clock)


def test_a_member_left_rebalancing_without_a_wanted_rejoin_is_rejoined_after_the_grace() -> None:
    clock, coord = Clock(), FakeCoordinator(MemberState.REBALANCING, rejoin=False)
    g, consumer = guard(clock), SimpleNamespace(_coordinator=coord)
    kicked = []
    for _ in range(30):  # 6 s of checks every 0.2 s
        kicked.append(g.check(consumer))
        clock.now += 0.2
    assert kicked.count(True) == 1
    assert kicked.index(True) >= 25  # not before 5 s
    assert coord.requests == 1 and g.kicks == 1


def test_a_short_passage_through_the_state_during_a_healthy_join_is_left_alone() -> None:
    clock, coord = Clock(), FakeCoordinator(MemberState.REBALANCING, rejoin=False)
    g, consumer = guard(clock), SimpleNamespace(_coordinator=coord)
    for _ in range(10):
        assert not g.check(consumer)
        clock.now += 0.2
    coord.state = MemberState.STABLE  # the poll consumed the join result
    for _ in range(40):
        assert not g.check(consumer)
        clock.now += 0.2
    assert coord.requests == 0


def test_a_member_that_still_wants_to_rejoin_is_not_touched() -> None:
    clock, coord = Clock(), FakeCoordinator(MemberState.REBALANCING, rejoin=True)
    g, consumer = guard(clock), SimpleNamespace(_coordinator=coord)
    for _ in range(100):
        assert not g.check(consumer)
        clock.now += 0.2
    assert coord.requests == 0


def test_one_slow_check_does_not_count_as_a_stuck_member() -> None:
    clock, coord = Clock(), FakeCoordinator(MemberState.REBALANCING, rejoin=False)
    g, consumer = guard(clock), SimpleNamespace(_coordinator=coord)
    assert not g.check(consumer)
    clock.now += 60  # the loop stalled; one observation is not enough
    for _ in range(STUCK_CHECKS - 2):
        assert not g.check(consumer)
    assert g.check(consumer)


def test_a_kafka_python_without_the_internals_disables_the_guard() -> None:
    g = guard(Clock())
    assert not g.check(SimpleNamespace())
    assert not g.check(SimpleNamespace(_coordinator=FakeCoordinator(MemberState.REBALANCING, rejoin=False)))


def test_polls_last_long_enough_for_a_join_while_the_member_rebalances() -> None:
    g = guard(Clock())
    rebalancing = SimpleNamespace(_coordinator=FakeCoordinator(MemberState.REBALANCING, rejoin=True))
    stable = SimpleNamespace(_coordinator=FakeCoordinator(MemberState.STABLE, rejoin=False))
    assert g.poll_timeout(rebalancing, 5) >= 500
    assert g.poll_timeout(stable, 5) == 5
