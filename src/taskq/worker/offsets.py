"""Which offset of each partition is safe to commit.

Tasks of one partition finish out of order when they run concurrently; Kafka only
stores one position per partition. We commit the end of the contiguous prefix of
finished offsets, so a crash re-delivers exactly the unfinished ones (and those
behind them, which Redis then recognises as finished and skips).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _PartitionWindow:
    pending: deque[int] = field(default_factory=deque)  # offsets received, in order
    done: set[int] = field(default_factory=set)
    position: int | None = None  # next offset to commit (one past the finished prefix)
    committed: int | None = None


class OffsetTracker:
    """Per-partition bookkeeping of received and finished offsets. Not thread-safe: one owner."""

    def __init__(self) -> None:
        self._parts: dict[int, _PartitionWindow] = {}

    def received(self, partition: int, offset: int) -> None:
        w = self._parts.setdefault(partition, _PartitionWindow())
        if w.pending and offset <= w.pending[-1]:
            raise ValueError(f"offset {offset} of partition {partition} received out of order")
        w.pending.append(offset)

    def finished(self, partition: int, offset: int) -> None:
        w = self._parts.get(partition)
        if w is None:
            return  # partition was revoked meanwhile: its position is no longer ours
        w.done.add(offset)
        while w.pending and w.pending[0] in w.done:
            first = w.pending.popleft()
            w.done.discard(first)
            w.position = first + 1

    def forget(self, partition: int) -> None:
        self._parts.pop(partition, None)

    def unfinished(self) -> int:
        """Offsets received and not finished yet (tasks queued or running)."""
        return sum(len(w.pending) - len(w.done) for w in self._parts.values())

    def backlog(self) -> int:
        """Offsets not yet committable: unfinished ones plus finished ones stuck behind them."""
        return sum(len(w.pending) for w in self._parts.values())

    def uncommitted(self) -> dict[int, int]:
        """Positions that moved since the last ``mark_committed``."""
        return {
            p: w.position for p, w in self._parts.items()
            if w.position is not None and w.position != w.committed
        }

    def mark_committed(self, positions: dict[int, int]) -> None:
        for p, pos in positions.items():
            w = self._parts.get(p)
            if w is not None:
                w.committed = pos
