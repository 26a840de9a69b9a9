"""Un-stick a consumer whose group join finished while nobody was waiting for it.

kafka-python 3.0.12 runs a JoinGroup/SyncGroup round as a task on its IO thread. When
``consumer.poll(timeout_ms=...)`` gives up before that task ends, the task is kept and its result
is picked up by the *next* poll, but only if ``need_rejoin()`` is still true then. The group leader
rejoins after a metadata change (its assignment snapshot no longer matches the topic metadata) and,
while that second join runs, refreshes the snapshot, so ``need_rejoin()`` turns false. If the join
then completes between two polls, nothing ever reads its result: the member stays in
``REBALANCING`` with heartbeats disabled and no partitions, for ever (about once per 50-100 worker
starts on a loaded 2-core machine).

The same flaw has a second face: a join result that lands between two polls while a rejoin *is*
still wanted is thrown away and a new JoinGroup is sent, so a loop whose polls are always shorter
than a join never joins (against real Kafka, 1 ms polls 200 ms apart after adding partitions stay
"rebalancing" for good: ``tests/integration/test_join_guard_kafka.py``). So, while the member is
rebalancing, the worker polls with at least ``JOIN_POLL_MS`` (``poll_timeout``): the poll is then
waiting when the join completes.

The guard also watches for the first state (rebalancing, yet no rejoin wanted) and, once it has held
for a few seconds, asks for a rejoin: the next (long) poll runs a fresh join whose result is awaited.
A healthy join passes through that state only for the milliseconds between the leader's assignment
and the poll that consumes it.
"""

from __future__ import annotations

import time
from typing import Any

from kafka.coordinator.base import MemberState

from ...logs import Log

# How long the stuck state must hold before we act; healthy joins leave it within milliseconds.
STUCK_SECONDS = 3.0
# ... and over at least this many checks (one check per commit interval of the worker loop).
STUCK_CHECKS = 3
# While the member is (re)joining, polls last at least this long, so one is waiting when the join ends.
JOIN_POLL_MS = 500


class JoinGuard:
    """Lengthens polls while the member joins, and rejoins a member whose join completed unseen."""

    def __init__(self, *, log: Log, stuck_seconds: float = STUCK_SECONDS, clock: Any = time.monotonic) -> None:
        self.log = log
        self.stuck_seconds = stuck_seconds
        self.clock = clock
        self.kicks = 0
        self._since: float | None = None
        self._checks = 0
        self._disabled = False

    def poll_timeout(self, consumer: Any, timeout_ms: int) -> int:
        """The poll timeout to use now: at least JOIN_POLL_MS while the member is rebalancing."""
        if self._disabled:
            return timeout_ms
        state = getattr(getattr(consumer, "_coordinator", None), "state", None)
        return max(timeout_ms, JOIN_POLL_MS) if state is MemberState.REBALANCING else timeout_ms

    def rebalancing(self, consumer: Any) -> bool:
        """Whether the member is (re)joining its group: kafka-python fetches nothing meanwhile."""
        state = getattr(getattr(consumer, "_coordinator", None), "state", None)
        return state is MemberState.REBALANCING

    def check(self, consumer: Any) -> bool:
        """Call from the consumer's thread; True when it asked the consumer to rejoin."""
        if self._disabled:
            return False
        try:
            coordinator = consumer._coordinator  # no public view of the join state
            stuck = coordinator.state is MemberState.REBALANCING and not coordinator.need_rejoin()
        except AttributeError:
            # A kafka-python without these internals: the guard cannot see the state, so it stays out.
            self.log.debug("join guard disabled: kafka-python internals changed")
            self._disabled = True
            return False
        if not stuck:
            self._since, self._checks = None, 0
            return False
        now = self.clock()
        if self._since is None:
            self._since = now
        self._checks += 1
        if self._checks < STUCK_CHECKS or now - self._since < self.stuck_seconds:
            return False
        self.log.warning("the Kafka group join completed unseen %.0f s ago (kafka-python left the member "
                         "rebalancing with no partitions); rejoining", now - self._since)
        coordinator.request_rejoin()
        self.kicks += 1
        self._since, self._checks = None, 0
        return True
