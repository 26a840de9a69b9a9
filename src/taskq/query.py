"""Filtered task listings: which Redis indexes a filter walks, its total, and pages both ways.

Every index (``idx:all``, ``idx:state:<s>``, ``idx:task:<name>``) scores a task by its creation
time, so a filter's time range is a score range of any of them and a page is a walk, newest first,
from a position (score, id). What the walked index cannot answer (the worker, a search, the other
of state and name) is checked on the records met on the way, and a walk examines a bounded number
of index entries: no request ever reads Redis in proportion to how many tasks it holds.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

import redis

from .errors import InvalidTask
from .models import TaskRecord, TaskState

# A listing or a count examines at most this many index entries per request.
SCAN_MAX = 10_000
# Entries read per index and records per pipeline: one Redis round trip each.
BATCH = 500
# ZINTERCARD (state x name, exact) while the smaller index holds at most this many entries:
# Redis walks the smaller set inside one command, so this bounds how long it blocks.
INTERCARD_MAX = 100_000
# A prefix matching more task names than this walks idx:all and checks names on the records.
MERGE_MAX = 64
Q_MAX = 200


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a listing or a bulk action takes; every field optional, all of them must hold.

    ``since``/``until`` bound the creation time (epoch seconds, both included); ``q`` is found,
    case-insensitively, in the args JSON, the kwargs JSON, the error text or the task id.
    Raises ``InvalidTask`` (HTTP 422) for a filter that cannot match as meant.
    """

    status: TaskState | None = None
    task: str | None = None
    task_prefix: str | None = None
    worker: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None

    def __post_init__(self) -> None:
        for name in ("task", "task_prefix", "worker", "q"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)  # an empty field filters nothing
        if self.status is not None and not isinstance(self.status, TaskState):
            try:
                object.__setattr__(self, "status", TaskState(self.status))
            except ValueError:
                raise InvalidTask(f"status {self.status!r} is not a task state; use one of "
                                  f"{', '.join(s.value for s in TaskState)}") from None
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise InvalidTask(f"{name} must be a time in epoch seconds (a number >= 0), got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidTask(f"since ({self.since:g}) is after until ({self.until:g}): nothing can match")
        if self.q is not None and len(self.q) > Q_MAX:
            raise InvalidTask(f"q is {len(self.q)} characters long; search for at most {Q_MAX}")

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in self.__slots__)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as the HTTP API and ``--json`` spell them."""
        out = {f: getattr(self, f) for f in self.__slots__ if getattr(self, f) is not None}
        if self.status is not None:
            out["status"] = self.status.value
        return out


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, newest first. Pass ``next_cursor`` or ``prev_cursor`` back as ``cursor``.

    ``total`` counts the whole filter; when ``total_exact`` is False it is a lower bound (the
    matches among the entries a count may examine). None when the count was not asked for.
    """

    items: list[TaskRecord]
    next_cursor: str | None
    prev_cursor: str | None = None
    total: int | None = None
    total_exact: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    """One index entry met on a walk: a task id, its creation time (the score) and the index."""

    id: str
    score: float
    key: str


@dataclass(slots=True)
class Plan:
    """How a filter is answered: the disjoint indexes walked, and what is checked on each record."""

    keys: list[str]
    states: frozenset[str] | None = None  # checked on records (None: the walked keys answer it)
    task: str | None = None  # the exact name, checked on records
    prefix: str | None = None  # the name prefix, checked on records
    worker: str | None = None
    q: str | None = None  # lower case
    finished_before: float | None = None
    # For counting from the indexes alone: the state and name indexes the filter selects (None: any).
    state_keys: list[str] | None = None
    name_keys: list[str] | None = None
    lo: float = -math.inf
    hi: float = math.inf
    empty: bool = False
    fields: list[str] = field(default_factory=list)  # the record fields the checks read

    @property
    def residual(self) -> bool:
        """Whether records must be read to know if an entry matches."""
        return bool(self.fields)

    def matches(self, task_id: str, h: dict[str, str | None]) -> bool:
        status = h.get("status")
        if not status:
            return False  # the record expired
        if self.states is not None and status not in self.states:
            return False
        name = h.get("task") or ""
        if self.task is not None and name != self.task:
            return False
        if self.prefix is not None and not name.startswith(self.prefix):
            return False
        if self.worker is not None and h.get("worker") != self.worker:
            return False
        if self.q is not None and not (self.q in task_id.lower() or any(
                self.q in (h.get(f) or "").lower() for f in ("args", "kwargs", "error"))):
            return False
        if self.finished_before is not None:
            finished = h.get("finished_at")
            if not finished or float(finished) >= self.finished_before:
                return False
        return True


def _score(value: float) -> str:
    return "-inf" if value == -math.inf else "+inf" if value == math.inf else repr(value)


def plan(r: redis.Redis, key: Callable[..., str], filt: TaskFilter, *,
         states: Collection[TaskState] | None = None, finished_before: float | None = None) -> Plan:
    """The indexes to walk for ``filt`` and the checks left for the records.

    ``states`` (a bulk action's) replaces the filter's status; ``finished_before`` keeps tasks that
    finished before that time (a purge's). Reads at most the task-name set and the indexes' sizes.
    """
    chosen = {s.value for s in states} if states is not None else (
        {filt.status.value} if filt.status is not None else None)
    hi = filt.until if filt.until is not None else math.inf
    if finished_before is not None:
        hi = min(hi, finished_before)  # a task finishes after it is created
    p = Plan(keys=[], worker=filt.worker, q=filt.q.lower() if filt.q else None, finished_before=finished_before,
             lo=filt.since if filt.since is not None else -math.inf, hi=hi)
    names: list[str] | None = None
    if filt.task is not None:
        names = [filt.task] if filt.task_prefix is None or filt.task.startswith(filt.task_prefix) else []
    elif filt.task_prefix is not None:
        known = cast(set[str], r.smembers(key("task-names")))
        names = sorted(n for n in known if n.startswith(filt.task_prefix))
    if names == [] or chosen == set() or p.lo > p.hi:
        p.empty = True
        return p
    p.state_keys = [key("idx", "state", s) for s in sorted(chosen)] if chosen is not None else None
    p.name_keys = [key("idx", "task", n) for n in names] if names is not None else None
    walk_names = p.name_keys is not None and len(p.name_keys) <= MERGE_MAX
    if p.state_keys is not None and walk_names:
        assert p.name_keys is not None
        pipe = r.pipeline(transaction=False)
        for k in (*p.state_keys, *p.name_keys):
            pipe.zcard(k)
        sizes = [int(n) for n in pipe.execute()]
        walk_names = sum(sizes[len(p.state_keys):]) < sum(sizes[: len(p.state_keys)])
    if walk_names:
        assert p.name_keys is not None
        p.keys = list(p.name_keys)
        p.states = frozenset(chosen) if chosen is not None else None
    else:
        p.keys = list(p.state_keys) if p.state_keys is not None else [key("idx", "all")]
        if names is not None:
            p.task, p.prefix = filt.task, filt.task_prefix
    wanted = {"status": p.states is not None, "task": p.task is not None or p.prefix is not None,
              "worker": p.worker is not None, "finished_at": finished_before is not None}
    p.fields = [f for f, need in wanted.items() if need]
    if p.q is not None:
        p.fields += ["args", "kwargs", "error"]
    if p.fields and "status" not in p.fields:
        p.fields.insert(0, "status")  # tells an expired record from a live one
    return p


class _Desc(str):
    """A task id that sorts backwards, so one min-heap merges indexes newest first."""

    __slots__ = ()

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)


def walk(r: redis.Redis, keys: Sequence[str], *, lo: float, hi: float, after: tuple[float, str] | None = None,
         back: bool = False) -> Iterator[Entry]:
    """The entries of disjoint indexes within [lo, hi], newest first (oldest first when ``back``),
    strictly past ``after``; merged, each index read ``BATCH`` entries at a time.

    Each read starts at the last entry read (by score, skipping its ties already seen), never at
    an offset from the top: entries removed meanwhile (a bulk action moving them) shift nothing.
    """
    heap: list[tuple[float, str, int]] = []
    bounds: list[tuple[float, str] | None] = [after] * len(keys)
    done = [False] * len(keys)

    def behind(i: int, member: str, score: float) -> bool:
        b = bounds[i]
        if b is None:
            return False
        if back:
            return score < b[0] or (score == b[0] and member <= b[1])
        return score > b[0] or (score == b[0] and member >= b[1])

    def fill(i: int) -> None:
        offset = 0
        while not done[i]:
            b = bounds[i]
            if back:
                start = max(lo, b[0]) if b else lo
                got = r.zrangebyscore(keys[i], _score(start), _score(hi), start=offset, num=BATCH, withscores=True)
            else:
                start = min(hi, b[0]) if b else hi
                got = r.zrevrangebyscore(keys[i], _score(start), _score(lo), start=offset, num=BATCH,
                                         withscores=True)
            rows = cast(list[tuple[str, float]], got)
            if len(rows) < BATCH:
                done[i] = True
            fresh = [(m, s) for m, s in rows if not behind(i, m, s)]
            if fresh:
                bounds[i] = (fresh[-1][1], fresh[-1][0])
                for m, s in fresh:
                    heapq.heappush(heap, (s, m, i) if back else (-s, _Desc(m), i))
                pending[i] = len(fresh)
                return
            offset += len(rows)  # a page of ties already seen: read past them

    pending = [0] * len(keys)
    for i in range(len(keys)):
        fill(i)
    while heap:
        s, m, i = heapq.heappop(heap)
        yield Entry(str(m), s if back else -s, keys[i])
        pending[i] -= 1
        if pending[i] == 0:
            fill(i)


class Scan:
    """A bounded walk that keeps the entries matching a plan, a chunk at a time.

    ``examined`` counts the index entries read; ``exhausted`` tells whether the walk reached the
    end of its range (False: it stopped at ``budget``, or its consumer stopped); ``last`` is the
    last entry examined (where a page that stopped at the budget continues).
    """

    def __init__(self, r: redis.Redis, key: Callable[..., str], p: Plan, *, budget: int,
                 after: tuple[float, str] | None = None, back: bool = False) -> None:
        self.r, self.key, self.plan, self.budget = r, key, p, budget
        self.examined = 0
        self.exhausted = p.empty
        self.last: Entry | None = None
        self._walk = iter(()) if p.empty else walk(r, p.keys, lo=p.lo, hi=p.hi, after=after, back=back)
        self._peeked: list[Entry] = []

    def _take(self, n: int) -> list[Entry]:
        out, self._peeked = self._peeked[:n], self._peeked[n:]
        out += list(islice(self._walk, n - len(out)))
        return out

    def more(self) -> bool:
        """Whether the walk holds another entry (read ahead by one, kept for the next chunk)."""
        if not self._peeked:
            self._peeked = list(islice(self._walk, 1))
        return bool(self._peeked)

    def chunks(self, size: Callable[[], int] | int = BATCH) -> Iterator[list[Entry]]:
        """Chunks of matching entries (possibly empty ones) until the range or the budget ends."""
        while not self.exhausted:
            want = min(size() if callable(size) else size, BATCH, self.budget - self.examined)
            if want <= 0:
                if not self.more():
                    self.exhausted = True
                return
            batch = self._take(want)
            if not batch:
                self.exhausted = True
                return
            self.examined += len(batch)
            self.last = batch[-1]
            yield self._matching(batch)

    def _matching(self, batch: list[Entry]) -> list[Entry]:
        p = self.plan
        if not p.residual:
            return batch
        pipe = self.r.pipeline(transaction=False)
        for e in batch:
            pipe.hmget(self.key("task", e.id), p.fields)
        rows = pipe.execute()
        return [e for e, row in zip(batch, rows, strict=True)
                if p.matches(e.id, dict(zip(p.fields, row, strict=True)))]


def total(r: redis.Redis, key: Callable[..., str], p: Plan) -> tuple[int, bool]:
    """How many tasks the plan matches, and whether that is exact (see ``Page.total``)."""
    n = exact_total(r, key, p)
    if n is not None:
        return n, True
    scan = Scan(r, key, p, budget=SCAN_MAX)
    found = sum(len(chunk) for chunk in scan.chunks())
    return found, scan.exhausted


def exact_total(r: redis.Redis, key: Callable[..., str], p: Plan) -> int | None:
    """The plan's total from the indexes alone (ZCOUNT, ZINTERCARD), or None when records must be read."""
    if p.empty:
        return 0
    if p.worker is None and p.q is None and p.finished_before is None:
        lo, hi = _score(p.lo), _score(p.hi)
        ranged = p.lo != -math.inf or p.hi != math.inf
        if p.state_keys is None or p.name_keys is None:
            keys = p.state_keys or p.name_keys or [key("idx", "all")]
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.zcount(k, lo, hi)
            return sum(int(n) for n in pipe.execute())
        if not ranged and len(p.state_keys) * len(p.name_keys) <= MERGE_MAX:
            pipe = r.pipeline(transaction=False)
            for k in (*p.state_keys, *p.name_keys):
                pipe.zcard(k)
            sizes = dict(zip((*p.state_keys, *p.name_keys), (int(n) for n in pipe.execute()), strict=True))
            pairs = [(s, n) for s in p.state_keys for n in p.name_keys if sizes[s] and sizes[n]]
            if all(min(sizes[s], sizes[n]) <= INTERCARD_MAX for s, n in pairs):
                pipe = r.pipeline(transaction=False)
                for s, n in pairs:
                    pipe.zintercard(2, [s, n])
                return sum(int(x) for x in pipe.execute())
    return None


def encode_cursor(e: Entry | tuple[float, str], *, back: bool = False) -> str:
    score, member = (e.score, e.id) if isinstance(e, Entry) else e
    return f"{'b' if back else ''}{score!r}:{member}"


def decode_cursor(cursor: str | None) -> tuple[tuple[float, str] | None, bool]:
    """(position, backwards) of a cursor; ``InvalidTask`` for one this module did not make."""
    if not cursor:
        return None, False
    back = cursor.startswith("b")
    score_s, sep, member = cursor[1 if back else 0:].partition(":")
    try:
        score = float(score_s)
    except ValueError:
        score = math.nan
    if not sep or not math.isfinite(score) or repr(score) != score_s:
        raise InvalidTask(f"cursor {cursor!r} is invalid: pass back a next_cursor or prev_cursor of an earlier page")
    return (score, member), back


def list_page(r: redis.Redis, key: Callable[..., str], filt: TaskFilter, *, limit: int, cursor: str | None = None,
              count: bool = True) -> Page:
    """A page of ``filt``'s tasks, newest first, from a cursor of an earlier page (see docs/http-api.md)."""
    after, back = decode_cursor(cursor)
    p = plan(r, key, filt)
    found: list[tuple[Entry, TaskRecord]] = []
    scan = Scan(r, key, p, budget=SCAN_MAX, after=after, back=back)
    want = limit + 1  # one more than a page tells whether another page follows

    def size(found: list[tuple[Entry, TaskRecord]] = found) -> int:
        # Without record checks every entry matches: read no more than the page still needs.
        return max(1, want - len(found)) if not p.residual else BATCH

    matched = 0  # matching entries met, the page's and beyond it
    for chunk in scan.chunks(size):
        matched += len(chunk)
        found.extend(_records(r, key, chunk[: want - len(found)]))
        if len(found) >= want:
            break
    prev: str | None
    if back:
        if len(found) < want and scan.exhausted:
            # Fewer than a page is newer: the first page, as it reads now.
            return list_page(r, key, filt, limit=limit, count=count)
        rows = found[:limit][::-1]
        items = [rec for _, rec in rows]
        if len(found) > limit:
            prev = encode_cursor(rows[0][0], back=True)
        else:  # stopped at the budget: continue back from where it stopped
            prev = encode_cursor(scan.last, back=True) if scan.last else None
        nxt = encode_cursor(rows[-1][0]) if rows else (encode_cursor(after) if after else None)
    else:
        rows = found[:limit]
        items = [rec for _, rec in rows]
        if len(found) > limit:
            nxt = encode_cursor(rows[-1][0])
        elif not scan.exhausted and scan.last is not None:
            nxt = encode_cursor(scan.last)  # stopped at the budget: continue from where it stopped
        else:
            nxt = None
        prev = None
        if after is not None:
            prev = encode_cursor(rows[0][0], back=True) if rows else encode_cursor(after, back=True)
    n: int | None = None
    exact = True
    if count and (n := exact_total(r, key, p)) is None:
        if after is None:
            # A first page walked from where a count starts: the count goes on from where it stopped.
            for chunk in scan.chunks():
                matched += len(chunk)
            n, exact = matched, scan.exhausted
        else:
            n, exact = total(r, key, p)
    return Page(items, nxt, prev, n, exact)


def _records(r: redis.Redis, key: Callable[..., str], entries: list[Entry]) -> list[tuple[Entry, TaskRecord]]:
    """The records of matching entries; an entry whose record expired leaves its index."""
    if not entries:
        return []
    pipe = r.pipeline(transaction=False)
    for e in entries:
        pipe.hgetall(key("task", e.id))
    out = []
    for e, h in zip(entries, pipe.execute(), strict=True):
        if h:
            out.append((e, TaskRecord.from_hash(h)))
        else:
            r.zrem(e.key, e.id)
    return out
