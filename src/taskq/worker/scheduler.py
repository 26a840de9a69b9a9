"""Delayed tasks and retries: produce them to Kafka when they are due.

Every worker runs one. Due entries are claimed in Redis with a lease, so two schedulers never
produce the same entry; a claim that is not produced (Kafka down, the worker dies) expires and is
claimed again, so nothing is lost.
"""

from __future__ import annotations

import math
import threading
import time

from ..errors import TaskqError
from ..kafka import Producer
from ..logs import Log
from ..store import Store

SCHEDULER_INTERVAL = 0.25
# Concurrency slots whose holder was lost unseen are handed on this often (see lua.CC_SWEEP).
SWEEP_INTERVAL = 1.0


class Scheduler:
    def __init__(self, *, store: Store, producer: Producer, log: Log, interval: float = SCHEDULER_INTERVAL) -> None:
        self.store = store
        self.producer = producer
        self.log = log
        self.interval = interval
        self._failing = False
        self._wake = threading.Event()
        self._next_due = math.inf  # the earliest due time a caller told of (a rate-limited task's slot)
        self._last_sweep = 0.0

    def wake(self) -> None:
        """Tick now rather than at the next interval (a workflow step was just started)."""
        self._wake.set()

    def due_at(self, when: float) -> None:
        """Tick at ``when`` (epoch seconds) if that is before the next interval: a held-back task's
        reserved slot is kept to within milliseconds, not to the interval."""
        if when < self._next_due:
            self._next_due = when
            self._wake.set()

    def tick(self) -> int:
        """Produce what is due now; returns how many. Failures are logged once per outage."""
        try:
            now = time.monotonic()
            if now - self._last_sweep >= SWEEP_INTERVAL:
                self._last_sweep = now
                self.store.sweep_concurrency()
            msgs = self.store.claim_due()
            if msgs:
                self.producer.send(msgs)
                self.store.scheduled_produced([m.id for m in msgs])
            if self._failing:
                self.log.info("scheduler resumed")
            self._failing = False
            return len(msgs)
        except TaskqError as exc:
            if not self._failing:
                self.log.warning("scheduler paused: %s", exc)
            self._failing = True
            return 0

    def run(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            self._wake.wait(max(0.0, min(self.interval, self._next_due - time.time())))
            self._wake.clear()
            if stopped.is_set():
                return
            if self._next_due <= time.time():
                self._next_due = math.inf
            try:
                self.tick()
            except Exception:  # a bug met by one tick must not stop delayed tasks and retries for good
                self.log.exception("scheduler: a tick failed unexpectedly; ticking on")
                stopped.wait(self.interval)
