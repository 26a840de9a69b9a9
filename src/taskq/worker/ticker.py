"""The tick loop of periodic schedules: every worker runs one, so no beat process can fail.

Each turn reads the schedules due now and claims their ticks with one Lua script per schedule
(``ScheduleStore.claim``): the claim compares-and-sets the schedule's next due time, so however many
workers see a tick, one claim wins and creates its task; the losers' claims do nothing. The task
waits in ``scheduled`` due now, and the worker's scheduler (``scheduler.py``) produces it to Kafka
under a lease, so a worker that dies after the claim loses nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ..errors import InvalidTask, TaskqError
from ..logs import Log
from ..schedules import Schedule, ScheduleStore, now_ms, plan

TICK_INTERVAL = 0.25


class Ticker:
    def __init__(self, *, schedules: ScheduleStore, declared: Sequence[Schedule] = (), log: Log,
                 interval: float = TICK_INTERVAL, clock: Callable[[], int] = now_ms,
                 created: Callable[[], None] | None = None) -> None:
        self.schedules = schedules
        self.on_created = created  # the worker's scheduler wakes: a claimed tick waits in 'scheduled'
        self.declared = list(declared)
        self.log = log
        self.interval = interval
        self.clock = clock
        self._declared = not self.declared  # nothing to upsert: done
        self._failing = False
        self._broken: set[str] = set()  # schedules whose stored definition no longer loads (warned once)

    def declare(self) -> None:
        """Upsert the code-declared schedules (idempotent across workers: unchanged ones keep their next tick)."""
        outcomes = [f"{s.name} {self.schedules.declare(s, now=self.clock())}" for s in self.declared]
        self.log.info("schedules declared: %s", ", ".join(outcomes))
        self._declared = True

    def tick(self) -> int:
        """Claim what is due now; returns how many tasks were created. Failures are logged once per outage."""
        created = 0
        try:
            if not self._declared:
                self.declare()
            now = self.clock()
            for name in self.schedules.due(now):
                created += self._claim(name, now)
            if created and self.on_created is not None:
                self.on_created()
            if self._failing:
                self.log.info("schedules resumed")
            self._failing = False
        except TaskqError as exc:
            if not self._failing:
                self.log.warning("schedules paused: %s", exc)
            self._failing = True
        return created

    def _claim(self, name: str, now: int) -> int:
        try:
            loaded = self.schedules.load(name)
            if loaded is None:
                return 0
            schedule, next_at = loaded
            p = plan(schedule, next_at, now)
        except (InvalidTask, ValueError) as exc:  # ValueError: croniter found no next date
            if name not in self._broken:
                self.log.warning("schedule %s is skipped: its stored definition is invalid: %s", name, exc)
                self._broken.add(name)
            return 0
        if p is None:
            return 0
        created = self.schedules.claim(schedule, next_at, p, now=now)
        if created is None:
            return 0  # another worker claimed these ticks first
        if p.dropped:
            self.log.info("schedule %s: %d missed tick(s) dropped (missed=%s)", name, p.dropped, schedule.missed)
        return created

    def run(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                self.tick()
            except Exception:  # one failed turn (a bug) must not stop this worker's schedules for good
                self.log.exception("schedules: a tick turn failed")
            stopped.wait(self.interval)
