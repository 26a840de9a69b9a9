"""A client-neutral stall watch: a partition with records waiting that delivers none is re-sought.

The kafka-python adapter has its own watch over that library's fetch state (``kafka_python.flow``).
librdkafka exposes no such state, so this one keeps its own: when each assigned, unpaused partition
last delivered a record. A partition quiet for ``stall_seconds`` is then asked about — where its
records end (the high watermark) and where it stands (the next offset handed out, else the
group's committed offset) — and, when records wait, sought to where it stands so the fetcher asks
for them again. Quiet partitions cost one check per ``stall_seconds``, and only when quiet.

Why it exists: on the e2e cluster, librdkafka with KIP-848 groups once left one partition's 50
tasks unread for 600 s after a scale-down, with a single worker holding every partition. Whatever
leaves a partition unfetched, a worker must not sit idle beside waiting work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

STALL_SECONDS = 15.0


@dataclass(slots=True)
class PartitionProbe:
    """How the watch asks a client about one partition (each may raise; the watch then waits)."""

    high_watermark: Callable[[int], int | None]  # None when unknown
    committed: Callable[[int], int | None]  # the group's committed offset, else the partition's start
    seek: Callable[[int, int], None]


@dataclass(slots=True)
class FetchWatch:
    probe: PartitionProbe
    log: logging.Logger
    stall_seconds: float = STALL_SECONDS
    # Probes ask the broker and block the consumer's thread: a few per check, the rest wait their turn.
    max_probes: int = 2
    resets: int = 0
    _quiet_since: dict[int, float] = field(default_factory=dict)
    _next: dict[int, int] = field(default_factory=dict)  # next offset the client will hand out

    def delivered(self, partition: int, offset: int, now: float | None = None) -> None:
        self._next[partition] = offset + 1
        self._quiet_since[partition] = time.monotonic() if now is None else now

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._next.pop(p, None)
            self._quiet_since.pop(p, None)

    def paused(self) -> None:
        """Nothing is fetched by design while paused: quiet time counts again from the resume."""
        self._quiet_since.clear()

    def check(self, fetching: Iterable[int], now: float | None = None) -> None:
        """Call from the consumer's thread with the partitions assigned and not paused."""
        now = time.monotonic() if now is None else now
        probes = 0
        for p in sorted(fetching):
            since = self._quiet_since.setdefault(p, now)
            if now - since < self.stall_seconds or probes >= self.max_probes:
                continue
            probes += 1
            self._quiet_since[p] = now  # asked at most once per stall_seconds
            try:
                high = self.probe.high_watermark(p)
                at = self._next.get(p)
                if at is None:
                    at = self.probe.committed(p)
                if high is None or at is None or at >= high:
                    continue
                self.resets += 1
                # Also fires after a Kafka outage longer than the limit; re-seeking is harmless then.
                self.log.warning("partition %d: %d task(s) waiting at offset %d, nothing fetched for %.0fs "
                                 "(Kafka unreachable, or a stalled fetch); re-seeking it",
                                 p, high - at, at, now - since)
                self.probe.seek(p, at)
            except Exception as exc:  # noqa: BLE001 - a guard must never take the consumer down
                # Kafka is likely away: the others wait for the next round rather than each
                # blocking the worker's loop for its own timeout.
                self.log.debug("stall check of partition %d failed: %s", p, exc)
                return
