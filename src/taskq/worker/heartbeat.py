"""The worker's liveness key in Redis, refreshed every ``heartbeat_interval``.

The key (TTL ``heartbeat_ttl``) is what makes the worker's leases live: while it exists, a
redelivered task of this worker waits for its outcome instead of being taken over. The same loop
prunes the task indexes once a minute (any worker may; pruning is idempotent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import StoreError
from ..logs import Log
from ..metrics import WorkerMetrics
from ..store import Store

PRUNE_SECONDS = 60.0


class Heartbeat:
    def __init__(self, *, store: Store, worker_id: str, fields: Callable[[], dict[str, Any]],
                 metrics: WorkerMetrics, log: Log, interval: float,
                 clock: Callable[[], float] = time.monotonic, on_quiet: Callable[[bool], None] | None = None) -> None:
        self.store = store
        self.worker_id = worker_id
        self.fields = fields
        self.metrics = metrics
        self.log = log
        self.interval = interval
        self.clock = clock
        self.on_quiet = on_quiet  # told on every beat whether an operator wants the worker quiet
        self._failing = False
        self._last_prune = clock()

    def beat(self) -> bool:
        """One refresh (and a prune when due); False while Redis is unreachable."""
        fields = self.fields()
        try:
            quiet = self.store.heartbeat(self.worker_id, **fields)
            if self.on_quiet is not None:
                self.on_quiet(bool(quiet))
            if self._failing:
                self.log.info("Redis is back")
            self._failing = False
            if self.clock() - self._last_prune > PRUNE_SECONDS:
                self.store.prune()
                self._last_prune = self.clock()
            ok = True
        except StoreError as exc:
            self.metrics.redis_error()
            if not self._failing:
                self.log.warning("heartbeat failed: %s", exc)
            self._failing = True
            ok = False
        self.metrics.heartbeat(partitions=fields["partitions"], concurrency=fields["concurrency"])
        return ok

    def run(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a bug here must not silence the beat: the worker would look lost
                self.metrics.internal_error()
                self.log.exception("heartbeat: a beat failed unexpectedly; beating on")
