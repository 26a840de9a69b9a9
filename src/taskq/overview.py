"""What an overview shows beyond the counts: the current finish rate, the oldest waiting task, what is due later.

The workers count finished tasks in 10 s buckets (``tput:<n>``, written by their ``APPLY`` script).
A 60 s average of those (``Store.throughput``) lingers for a minute after everything stopped; the
rate here is exact over the last ``window`` seconds instead: each read keeps the count of the
current bucket as it was then, and the next read ``window`` s later subtracts it from the buckets'
counts now. Until a process has a reading that old, the rate is estimated from the last two buckets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

from .due import scheduled_count
from .models import Stats
from .store import Store, translate_errors

BUCKET = 10  # seconds per tput:<n> bucket, as the workers' APPLY script writes them
FINISHED = ("success", "failed", "dead")  # the outcomes that end a task ("retrying" does not)
# Queued tasks looked at, oldest first, to find the oldest one that is ready to run (delayed
# tasks not yet due are queued too); past it the age is unknown (None).
OLDEST_SCAN = 200
# Running records looked at to tell runs of lost workers apart (more than the slots of any cluster).
RUNNING_SCAN = 5000


@dataclass(frozen=True, slots=True)
class Overview(Stats):
    """``Stats`` with what an operator reads at a glance."""

    rate: dict[str, float] = field(default_factory=dict)  # per second over rate_window, by outcome
    rate_window: float = 0.0  # seconds the rate is measured over (0: nothing to measure yet)
    finished_per_second: float = 0.0  # success + failed + dead, per second over rate_window
    oldest_queued_age: float | None = None  # seconds the oldest task ready to run has waited
    scheduled: int = 0  # delayed tasks and retries due later
    # Of counts["running"], the runs whose worker's heartbeat expired: Kafka hands them to another
    # worker once the group notices (session timeout), so they are not busy slots.
    running_lost: int = 0


class FinishRate:
    """Finished tasks per second over the last ``window`` seconds, by outcome. Thread-safe."""

    def __init__(self, *, window: float = 10.0) -> None:
        if not 1.0 <= window <= BUCKET:
            raise ValueError(f"window must be between 1 and {BUCKET} seconds, got {window}")
        self.window = window
        self._lock = threading.Lock()
        # (time, bucket, that bucket's counts then): at most ~3 buckets' worth are kept.
        self._readings: deque[tuple[float, int, dict[str, int]]] = deque()

    def read(self, store: Store, *, now: float | None = None) -> tuple[dict[str, float], float]:
        """``({outcome: per second}, seconds measured over)``."""
        now = time.time() if now is None else now
        b = int(now // BUCKET)
        with translate_errors():
            pipe = store.r.pipeline(transaction=False)
            for k in (b - 2, b - 1, b):
                pipe.hgetall(store.key("tput", str(k)))
            rows = cast(list[dict[str, str]], pipe.execute())
        buckets = {k: {s: int(v) for s, v in h.items()} for k, h in zip((b - 2, b - 1, b), rows, strict=True)}
        with self._lock:
            base = self._base(now, b)
            if not self._readings or now - self._readings[-1][0] >= 0.5:  # many readers need few readings
                self._readings.append((now, b, buckets[b]))
            while self._readings and self._readings[0][0] < now - 2 * BUCKET:
                self._readings.popleft()
        counts: dict[str, float] = {}
        if base is None:
            # No earlier reading to subtract: the current bucket, plus the part of the one before
            # that lies in the window as if its tasks had finished evenly over it.
            into = now - b * BUCKET
            if self.window >= into:
                counts = {s: float(n) for s, n in buckets[b].items()}
                for s, n in buckets[b - 1].items():
                    counts[s] = counts.get(s, 0.0) + n * (self.window - into) / BUCKET
            else:
                counts = {s: n * self.window / into for s, n in buckets[b].items()}
            span = self.window
        else:
            t0, b0, then = base
            for k in range(b0, b + 1):
                for s, n in buckets[k].items():
                    counts[s] = counts.get(s, 0) + n
            for s, n in then.items():
                counts[s] = counts.get(s, 0) - n
            span = now - t0
        return {s: round(max(0.0, n) / span, 3) for s, n in sorted(counts.items()) if n > 0}, round(span, 2)

    def _base(self, now: float, b: int) -> tuple[float, int, dict[str, int]] | None:
        """The newest reading at least ``window`` old whose bucket is still among the three read."""
        best = None
        for reading in self._readings:
            t, rb, _ = reading
            if t <= now - self.window and b - rb <= 2:
                best = reading
        return best


def oldest_queued_age(store: Store, *, now: float | None = None) -> float | None:
    """Seconds the oldest queued task that is ready to run has waited (since its creation, the end
    of its delay, or its manual retry); None when none is queued (or only delayed ones)."""
    now = time.time() if now is None else now
    index = store.key("idx", "state", "queued")
    with translate_errors():
        for start in range(0, OLDEST_SCAN, 50):
            rows = cast(list[tuple[str, float]], store.r.zrange(index, start, start + 49, withscores=True))
            if not rows:
                return None
            pipe = store.r.pipeline(transaction=False)
            for tid, _ in rows:
                pipe.hmget(store.key("task", tid), "eta", "prev_finished_at")
            ready: list[float] = []
            for (_, created), (eta, retried) in zip(rows, pipe.execute(), strict=True):
                due = float(eta) if eta else 0.0
                if due > now:
                    continue  # a delayed task, not due yet: not waiting for a worker
                ready.append(max(created, due, float(retried) if retried else 0.0))
            if ready:
                return round(max(0.0, now - min(ready)), 3)
    return None


def overview(stats: Stats, store: Store, rate: FinishRate) -> Overview:
    """``stats`` with the current rate, the oldest queued age and the scheduled count."""
    per_status, span = rate.read(store)
    return Overview(
        counts=stats.counts, workers_alive=stats.workers_alive, throughput=stats.throughput, lag=stats.lag,
        lag_total=stats.lag_total, rate=per_status, rate_window=span,
        finished_per_second=round(sum(v for s, v in per_status.items() if s in FINISHED), 3),
        oldest_queued_age=oldest_queued_age(store), scheduled=scheduled_count(store),
        running_lost=running_on_lost_workers(store),
    )


def running_on_lost_workers(store: Store) -> int:
    """Running records whose worker is no longer alive (its lease expired): about to be redelivered."""
    alive = {w.id for w in store.workers() if w.status == "alive"}
    with translate_errors():
        ids = cast(list[str], store.r.zrange(store.key("idx", "state", "running"), 0, RUNNING_SCAN - 1))
        pipe = store.r.pipeline(transaction=False)
        for tid in ids:
            pipe.hmget(store.key("task", tid), "status", "worker")
        rows = cast(list[list[str | None]], pipe.execute())
    return sum(1 for st, w in rows if st == "running" and w not in alive)
