"""Tasks waiting for a due time: delayed submissions and retries in their backoff, soonest first.

They are the members of the ``scheduled`` sorted set (scored by due time), from which a worker's
scheduler produces each one to Kafka when it comes due. Members due now are about to be produced
(a manual retry, a released workflow step, a task a flow-control limit held back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import cast

from .errors import InvalidTask
from .models import TaskRecord
from .store import Store, translate_errors


@dataclass(slots=True)
class DueTask(TaskRecord):
    """A task's record with when it is due to be produced to Kafka."""

    due_at: float = 0.0

    @classmethod
    def of(cls, rec: TaskRecord, due_at: float) -> DueTask:
        return cls(**{f.name: getattr(rec, f.name) for f in fields(rec)}, due_at=due_at)


@dataclass(frozen=True, slots=True)
class DuePage:
    items: list[DueTask]  # soonest due first
    next_cursor: str | None
    total: int  # every member, due now or later
    later: int  # due after now


def scheduled_count(store: Store, *, now: float | None = None) -> int:
    """Delayed tasks and retries waiting for a due time after ``now``."""
    now = time.time() if now is None else now
    with translate_errors():
        return int(store.r.zcount(store.key("scheduled"), f"({now!r}", "+inf"))


def _cursor(cursor: str | None) -> tuple[str, str | None]:
    if not cursor:
        return "-inf", None
    score_s, sep, after = cursor.partition(":")
    try:
        score = float(score_s)
    except ValueError:
        score = float("nan")
    if not sep or score != score or repr(score) != score_s or not after:
        raise InvalidTask(f"cursor {cursor!r} is invalid: pass back the next_cursor of the previous page")
    return score_s, after


def due_page(store: Store, *, limit: int = 50, cursor: str | None = None) -> DuePage:
    """A page of the tasks waiting for their due time, soonest first; ``cursor`` is the
    ``next_cursor`` of the page before."""
    start, after = _cursor(cursor)
    key = store.key("scheduled")
    now = time.time()
    out: list[DueTask] = []
    last: tuple[float, str] | None = None
    with translate_errors():
        offset = 0
        while len(out) < limit:
            rows = cast(list[tuple[str, float]],
                        store.r.zrangebyscore(key, start, "+inf", start=offset, num=limit + 10, withscores=True))
            if not rows:
                break
            offset += len(rows)
            fresh = [(m, sc) for m, sc in rows if after is None or repr(sc) != start or m > after]
            for (member, score), rec in zip(fresh, store.get_many(m for m, _ in fresh), strict=True):
                if rec is None or rec.status.value not in ("queued", "retrying"):
                    continue  # expired, or on its way out of the set
                out.append(DueTask.of(rec, score))
                last = (score, member)
                if len(out) >= limit:
                    break
            if len(rows) < limit + 10:
                break
        pipe = store.r.pipeline(transaction=False)
        pipe.zcard(key)
        pipe.zcount(key, f"({now!r}", "+inf")
        total, later = pipe.execute()
    more = last is not None and len(out) >= limit
    return DuePage(out, f"{last[0]!r}:{last[1]}" if more and last else None, int(total), int(later))

