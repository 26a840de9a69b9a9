"""Pause and resume fetching without losing the records kafka-python parked meanwhile.

The worker pauses every partition while its window of unfinished tasks is full and resumes them
when a slot frees. kafka-python 3.0.12 (KAFKA-7548 port) parks the already-fetched records of a
paused partition and hands them back after ``resume()`` - but only when its in-line slot
(``Fetcher._next_partition_records``) is ``None``. That slot is set to ``None`` only when its own
partition gets parked; otherwise it keeps the last, exhausted ``PartitionRecords`` for ever. So a
partition paused with records left in-line (``poll(max_records=...)`` took part of a fetched
batch), while another partition's records then took the slot, stays parked after ``resume()``:
its records are never returned, and the fetcher never fetches a partition with parked records
again. The partition stalls with tasks on it, for good (found with the chaos test: a partition's
offsets 28-32 were run, 33-45 of the same fetched batch sat queued for minutes on an idle worker).

``resume_all`` resumes and then empties an exhausted in-line slot, which is the state kafka-python
expects before it restores parked records. It touches one private attribute and does nothing if a
later kafka-python no longer has it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("taskq.worker")


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
    """Let kafka-python restore records it parked while their partition was paused."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "_next_partition_records"):
        return
    inline = fetcher._next_partition_records
    if inline is not None and not inline and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None  # exhausted: free the slot for the parked records
