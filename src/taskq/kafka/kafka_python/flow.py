"""Pause and resume fetching without losing the records kafka-python parks meanwhile.

The worker pauses every partition while its window of unfinished tasks is full and resumes them
when a slot frees. kafka-python 3.0.12 (its KAFKA-7548 port) parks the already-fetched records of
a paused partition and hands them back after ``resume()`` - but only when its in-line slot
(``Fetcher._next_partition_records``) is ``None``. That slot becomes ``None`` only when its own
partition gets parked; otherwise it keeps the last, exhausted ``PartitionRecords`` for ever. So a
partition paused with records left in-line (``poll(max_records=...)`` took part of a fetched
batch), while another partition's records then take the slot, stays parked after ``resume()``:
its records are never returned, and the fetcher never fetches a partition with parked records
again. The partition stalls with tasks on it, for good: the first records of a fetched batch run,
the rest of the same batch stay queued on an idle worker.

``resume_all`` therefore resumes and then drops the records parked for partitions no longer
paused; the fetcher fetches those partitions again from their position (nothing was consumed past
it). Freeing an exhausted in-line slot is not enough: when the slot holds another partition's live
records at resume time, the parked ones stay stranded. This touches private attributes and does
nothing if a later kafka-python no longer has them.
"""

from __future__ import annotations

import time
from typing import Any

from ...logs import Log

# A partition with tasks known to be waiting (its high watermark is past our position) that has
# not moved for this long while the worker is not paused gets its fetch state reset.
STALL_SECONDS = 15.0


def pause_all(consumer: Any) -> None:
    """Pause every assigned partition that is not paused yet (new ones arrive unpaused)."""
    unpaused = consumer.assignment() - consumer.paused()
    if unpaused:
        consumer.pause(*unpaused)


def resume_all(consumer: Any) -> bool:
    """Resume every paused partition; True if there were any."""
    held = consumer.paused()
    if not held:
        return False
    consumer.resume(*held)
    release_parked(consumer)
    return True


def release_parked(consumer: Any) -> None:
    """Drop what kafka-python parked for partitions that are no longer paused: they are fetched again."""
    subscription = getattr(consumer, "_subscription", None)
    if subscription is None:
        return
    for tp in list(_parked(consumer)):
        if not subscription.is_paused(tp):
            drop_parked(consumer, tp)


def drop_parked(consumer: Any, tp: Any) -> None:
    """Forget the records kafka-python parked for ``tp`` (if any), so the fetcher fetches it again."""
    records = _parked(consumer).pop(tp, None)
    if records is not None:
        records.drain()


def _parked(consumer: Any) -> dict[Any, Any]:
    parked = getattr(getattr(consumer, "_fetcher", None), "_paused_partition_records", None)
    return parked if isinstance(parked, dict) else {}


class StallWatch:
    """Last line of defence: reset the fetch state of a partition that stopped being fetched.

    Parked records (above) are one way kafka-python strands a partition; others are conceivable
    (incremental fetch sessions, which the consumer in ``adapter.py`` turns off). Whatever the way,
    the symptom is the same: the consumer knows records are waiting (the high watermark of its
    last fetch is past its position) and the position does not move although the worker is not
    paused. After ``STALL_SECONDS`` of that the partition's parked records are dropped and the
    consumer is sought to its own position, which makes the fetcher ask for it again. Reading the
    position and high watermark uses kafka-python's subscription state; without it the watch does
    nothing.
    """

    def __init__(self, *, log: Log, stall_seconds: float = STALL_SECONDS) -> None:
        self.log = log
        self.stall_seconds = stall_seconds
        self._since: dict[Any, tuple[int, float]] = {}  # tp -> (position, first seen stuck there)
        self.resets = 0

    def check(self, consumer: Any, *, paused: bool, rebalancing: bool = False, now: float | None = None) -> None:
        """Call from the consumer's thread. While paused or rebalancing nothing is fetched by design:
        kafka-python's poll() returns before fetching while the member (re)joins its group, which
        under constant worker churn (a worker killed every 3-6 s) lasts many seconds."""
        if paused or rebalancing:
            self._since.clear()
            return
        states = getattr(getattr(consumer, "_subscription", None), "assignment", None)
        if not isinstance(states, dict):
            return
        now = time.monotonic() if now is None else now
        seen: dict[Any, tuple[int, float]] = {}
        for tp, state in list(states.items()):
            position = getattr(state, "position", None)
            highwater = getattr(state, "highwater", None)
            offset = getattr(position, "offset", None)
            if offset is None or highwater is None or offset >= highwater or getattr(state, "paused", False):
                continue
            first = self._since.get(tp)
            since = first[1] if first is not None and first[0] == offset else now
            seen[tp] = (offset, since)
            if now - since >= self.stall_seconds:
                self._reset(consumer, tp, offset, highwater - offset, now - since)
                seen[tp] = (offset, now)
        self._since = seen

    def _reset(self, consumer: Any, tp: Any, offset: int, waiting: int, seconds: float) -> None:
        self.resets += 1
        # Also fires after a Kafka outage longer than the limit; re-seeking is harmless then.
        self.log.warning("partition %d: %d task(s) waiting at offset %d, nothing fetched for %.0fs "
                         "(Kafka unreachable, or a stalled fetch); re-seeking it", tp.partition,
                         waiting, offset, seconds)
        drop_parked(consumer, tp)
        consumer.seek(tp, offset)
