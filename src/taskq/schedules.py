"""Periodic schedules: cron expressions and fixed intervals, enqueued exactly once per tick.

A ``Schedule`` is a definition (what to run, when, and what to do with ticks missed during an
outage). Every worker runs the tick loop (``taskq.worker.ticker``); there is no beat process. Redis
keeps each schedule in ``sched:<name>`` and every schedule's name in the ``schedules`` sorted set
by its next due time (paused ones at +inf). A tick is claimed by one Lua script (``lua.SCHED_CLAIM``)
that compares-and-sets the schedule's ``next_at`` and, in the same call, records the tick's task in
the ``scheduled`` set due now, where a worker's scheduler produces it to Kafka. Tick times are
integer milliseconds, so every worker computes the same ticks, and a tick's task id is derived from
(name, tick), so no retry or race can enqueue a tick twice.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from croniter import CroniterError, croniter

from . import limits, lua
from .errors import InvalidTask, ScheduleExists, ScheduleNotFound
from .models import json_problem
from .store import Store, translate_errors

NAME_MAX = 128
NAME_RE = re.compile(rf"^[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,{NAME_MAX - 1}}}$")
# The tick loop turns every 0.25 s: a shorter interval would only fire in bursts.
EVERY_MIN = 0.1
EVERY_MAX = 366 * 24 * 3600.0
CATCHUP_MAX = 1000
GRACE_MAX = 24 * 3600.0
# Counting the ticks an outage dropped walks them one by one for cron; past this many the count
# stops (a minutely cron down for a week would walk 10,080).
COUNT_MAX = 10_000

Missed = Literal["skip", "catchup"]
Source = Literal["code", "api"]


@dataclass(frozen=True, slots=True)
class Every:
    """A fixed interval, for ``@task(schedule=every(seconds=10))``."""

    seconds: float


def every(*, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0) -> Every:
    """A fixed interval. Ticks fall on multiples of it since the Unix epoch (UTC), so ``every(hours=1)``
    fires on the hour and every worker agrees on the ticks."""
    return Every(seconds + 60 * minutes + 3600 * hours + 86400 * days)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A task to enqueue on a cron expression or every N seconds.

    ``missed`` decides what happens to ticks that could not be enqueued in time (no worker running,
    Redis down): a tick enqueued more than ``misfire_grace`` seconds after it was due counts as
    missed; ``"skip"`` drops every missed tick, ``"catchup"`` enqueues the ``catchup`` most recent
    ones. Ticks still within the grace are always enqueued.

    >>> Schedule("nightly-report", "report", cron="0 3 * * *", timezone="Europe/Berlin")
    >>> Schedule("poll", "poll_feeds", every=30, missed="catchup", catchup=1)
    """

    name: str
    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    missed: Missed = "skip"
    catchup: int = 0
    misfire_grace: float = 5.0
    paused: bool = False
    max_retries: int | None = None
    timeout: float | None = None
    source: Source = "api"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise InvalidTask(f"schedule name {self.name!r} is invalid: use 1 to {NAME_MAX} letters, digits, "
                              "'_', '.', ':' or '-', starting with a letter, digit or '_'")
        where = f"schedule {self.name!r}"
        if why := limits.task_name_problem(self.task):
            raise InvalidTask(f"{where}: {why}")
        object.__setattr__(self, "args", list(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        if why := json_problem(self.args, "args") or json_problem(self.kwargs, "kwargs"):
            raise InvalidTask(f"{where}: {why}")
        every_ = self.every.seconds if isinstance(self.every, Every) else self.every
        if (self.cron is None) == (every_ is None):
            raise InvalidTask(f"{where}: give exactly one of cron (e.g. '*/5 * * * *') or every (seconds)")
        if every_ is not None:
            if not _is_number(every_) or not math.isfinite(every_) or every_ <= 0:
                raise InvalidTask(f"{where}: every must be a number of seconds above 0, got {every_!r}")
            if not EVERY_MIN <= every_ <= EVERY_MAX:
                raise InvalidTask(f"{where}: every must be from {EVERY_MIN:g} to {EVERY_MAX:g} seconds, "
                                  f"got {every_!r}")
            object.__setattr__(self, "every", float(every_))
        try:
            zone = ZoneInfo(self.timezone) if isinstance(self.timezone, str) and self.timezone else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            raise InvalidTask(f"{where}: unknown timezone {self.timezone!r}: use an IANA name such as "
                              "'UTC' or 'Europe/Berlin'")
        if self.cron is not None:
            object.__setattr__(self, "cron", _check_cron(self.cron, where))
        if self.missed not in ("skip", "catchup"):
            raise InvalidTask(f"{where}: missed must be 'skip' or 'catchup', got {self.missed!r}")
        if self.missed == "catchup":
            if not isinstance(self.catchup, int) or isinstance(self.catchup, bool) \
                    or not 1 <= self.catchup <= CATCHUP_MAX:
                raise InvalidTask(f"{where}: missed='catchup' needs catchup=N, the most missed ticks to enqueue "
                                  f"(1 to {CATCHUP_MAX}), got {self.catchup!r}")
        elif self.catchup != 0:
            raise InvalidTask(f"{where}: catchup={self.catchup!r} needs missed='catchup'")
        if not _is_number(self.misfire_grace) or not 0 <= self.misfire_grace <= GRACE_MAX:
            raise InvalidTask(f"{where}: misfire_grace must be from 0 to {GRACE_MAX:g} seconds, "
                              f"got {self.misfire_grace!r}")
        for why in (limits.max_retries_problem(self.max_retries), limits.timeout_problem(self.timeout)):
            if why:
                raise InvalidTask(f"{where}: {why}")
        if self.source not in ("code", "api"):
            raise InvalidTask(f"{where}: source must be 'code' or 'api', got {self.source!r}")

    # --- definition ----------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """What defines the ticks and their tasks: a change of any of it replaces the schedule."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("paused", "source")}

    def version(self) -> str:
        return hashlib.sha1(orjson.dumps(self.spec(), option=orjson.OPT_SORT_KEYS)).hexdigest()  # noqa: S324

    @property
    def when(self) -> str:
        """The timing as people read it: ``cron 0 3 * * * (Europe/Berlin)`` or ``every 10s``."""
        if self.every is not None:
            return f"every {self.every:g}s"
        return f"cron {self.cron}" + (f" ({self.timezone})" if self.timezone != "UTC" else "")

    # --- ticks (integer milliseconds since the epoch) -----------------------------
    def next_after(self, t: int) -> int:
        """The first tick strictly after ``t``."""
        if self.every is not None:
            step = _every_ms(self.every)
            return (t // step + 1) * step
        it = croniter(cast(str, self.cron), _dt(t, self.timezone))
        while True:
            nxt = cast(datetime, it.get_next(datetime))
            if not self._repeat(nxt):
                return _ms(nxt)

    def ticks_back(self, now: int, since: int) -> Iterator[int]:
        """Ticks from ``now`` (included) back to ``since`` (included), newest first."""
        if self.every is not None:
            step = _every_ms(self.every)
            t = now // step * step
            while t >= since:
                yield t
                t -= step
            return
        it = croniter(cast(str, self.cron), _dt(now + 1, self.timezone))
        while True:
            prev = cast(datetime, it.get_prev(datetime))
            t = _ms(prev)
            if t < since:
                return
            if not self._repeat(prev):
                yield t

    def _repeat(self, dt: datetime) -> bool:
        """Whether a cron tick is the second pass through a wall time repeated by a fall-back.

        A cron with fixed hours fires once then (at the first pass), one with hour ``*`` at each real
        occurrence, as Vixie cron does: ``30 1 * * *`` runs once on the night clocks go back."""
        if dt.fold == 0 or dt.utcoffset() == dt.replace(fold=0).utcoffset():
            return False
        return bool(croniter(cast(str, self.cron)).expanded[1] != ["*"])


def _check_cron(expr: Any, where: str) -> str:
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidTask(f"{where}: cron must be a cron expression such as '*/5 * * * *', got {expr!r}")
    text = " ".join(expr.split())
    if not text.startswith("@") and len(text.split()) != 5:
        raise InvalidTask(f"{where}: cron expression {text!r} must have 5 fields (minute hour day month weekday), "
                          "e.g. '*/5 * * * *', or be one of @hourly @daily @weekly @monthly @yearly")
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidTask(f"{where}: cron expression {text!r} is invalid: {exc}") from exc
    try:
        # Valid fields can still name no date (31 February): croniter fails only when asked for one.
        croniter(text, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))).get_next(datetime)
    except (CroniterError, ValueError) as exc:
        raise InvalidTask(f"{where}: cron expression {text!r} never matches a date: {exc}") from exc
    return text


def _every_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _dt(t: int, tz: str) -> datetime:
    return datetime.fromtimestamp(t / 1000, tz=ZoneInfo(tz))


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def tick_task_id(name: str, tick: int) -> str:
    """A tick's task id: the same for every worker and every retry of the claim (32 characters)."""
    return "s" + hashlib.sha1(f"{name}|{tick}".encode()).hexdigest()[:31]  # noqa: S324 - an id, not a secret


@dataclass(frozen=True, slots=True)
class Plan:
    """What one claim does: enqueue ``ticks`` (oldest first), count ``dropped`` missed ticks, and move
    the schedule's next due time to ``following``."""

    ticks: list[int]
    dropped: int
    following: int


def plan(schedule: Schedule, next_at: int, now: int) -> Plan | None:
    """The claim for a schedule due at ``next_at``, seen at ``now``; None while it is not due.

    Ticks within ``misfire_grace`` of ``now`` are enqueued; older (missed) ones are dropped, or the
    ``catchup`` most recent of them enqueued."""
    if next_at > now:
        return None
    grace = round(schedule.misfire_grace * 1000)
    keep_missed = schedule.catchup if schedule.missed == "catchup" else 0
    ticks: list[int] = []
    dropped = 0
    kept_missed = 0
    for t in schedule.ticks_back(now, next_at):
        if now - t <= grace:
            ticks.append(t)
        elif kept_missed < keep_missed:
            ticks.append(t)
            kept_missed += 1
        elif schedule.every is not None:
            # The rest are every tick from next_at to here: counted without walking them.
            dropped = (t - next_at) // _every_ms(schedule.every) + 1
            break
        else:
            dropped += 1
            if dropped >= COUNT_MAX:
                break
    return Plan(sorted(ticks), dropped, schedule.next_after(now))


# --- what the API and the CLI show ---------------------------------------------------
@dataclass(slots=True)
class ScheduleInfo:
    """A schedule with its state: when it runs next (None while paused), its last run and that run's
    outcome (``last_status``, read from the task's record), how many ticks it enqueued and dropped."""

    name: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    cron: str | None
    every: float | None
    timezone: str
    missed: str
    catchup: int
    misfire_grace: float
    paused: bool
    max_retries: int | None
    timeout: float | None
    source: str
    next_at: float | None
    last_at: float | None
    last_task_id: str | None
    last_status: str | None
    runs: int
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _info(schedule: Schedule, h: dict[str, str], last_status: str | None) -> ScheduleInfo:
    return ScheduleInfo(
        **schedule.spec(), paused=schedule.paused, source=schedule.source,
        next_at=None if schedule.paused or not h.get("next_at") else int(h["next_at"]) / 1000,
        last_at=int(h["last_at"]) / 1000 if h.get("last_at") else None,
        last_task_id=h.get("last_task_id") or None, last_status=last_status,
        runs=int(h.get("runs") or 0), dropped=int(h.get("dropped") or 0),
    )


def _decode(h: dict[str, str]) -> Schedule:
    try:
        spec = orjson.loads(h["spec"])
        return Schedule(**spec, paused=h.get("paused") == "1", source=cast(Source, h.get("source") or "api"))
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidTask(f"schedule {h.get('name')!r}: this version cannot read its stored definition: {exc}") from exc


class ScheduleStore:
    """Schedules in Redis, beside the tasks: ``sched:<name>`` hashes and the ``schedules`` sorted set."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.r = store.r
        self.prefix = store.prefix
        self._translate = translate_errors
        self._upsert = self.r.register_script(lua.SCHED_UPSERT)
        self._claim = self.r.register_script(lua.SCHED_CLAIM)
        self._state = self.r.register_script(lua.SCHED_STATE)
        self._note = self.r.register_script(lua.SCHED_NOTE)

    def _key(self, name: str) -> str:
        return f"{self.prefix}sched:{name}"

    def _put(self, schedule: Schedule, mode: Literal["create", "code"], now: int) -> int:
        with self._translate():
            return int(self._upsert(args=[
                self.prefix, schedule.name, orjson.dumps(schedule.spec()).decode(), schedule.version(),
                schedule.source, str(schedule.next_after(now)), "1" if schedule.paused else "0", mode,
                repr(now / 1000)]))

    def create(self, schedule: Schedule, *, now: int | None = None) -> ScheduleInfo:
        """Add a schedule; ``ScheduleExists`` if its name is taken. Its first tick is the next one."""
        if not self._put(schedule, "create", now if now is not None else now_ms()):
            raise ScheduleExists(f"a schedule named {schedule.name!r} exists already: delete it first, "
                                 "or pick another name")
        return self.get(schedule.name)

    def declare(self, schedule: Schedule, *, now: int | None = None) -> str:
        """Upsert a code-declared schedule: ``created``, ``unchanged`` (its next tick kept) or ``replaced``
        (a changed definition starts from its next tick; a pause set at run time stays)."""
        code = replace(schedule, source="code")
        return {1: "created", 2: "unchanged", 3: "replaced"}[self._put(code, "code", now if now is not None
                                                                        else now_ms())]

    def get(self, name: str) -> ScheduleInfo:
        infos = self._infos([name])
        if not infos:
            raise ScheduleNotFound(name)
        return infos[0]

    def list_all(self) -> list[ScheduleInfo]:
        """Every schedule, the next due first (paused ones last)."""
        with self._translate():
            names = cast(list[str], self.r.zrange(f"{self.prefix}schedules", 0, -1))
        return self._infos(names)

    def _infos(self, names: Sequence[str]) -> list[ScheduleInfo]:
        with self._translate():
            pipe = self.r.pipeline(transaction=False)
            for n in names:
                pipe.hgetall(self._key(n))
            rows = [cast(dict[str, str], h) for h in pipe.execute() if h]
            pipe = self.r.pipeline(transaction=False)
            for h in rows:
                pipe.hget(f"{self.prefix}task:{h.get('last_task_id', '')}", "status")
            statuses = pipe.execute()
        return [_info(_decode(h), h, s) for h, s in zip(rows, statuses, strict=True)]

    def delete(self, name: str) -> None:
        with self._translate():
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self._key(name))
            pipe.zrem(f"{self.prefix}schedules", name)
            gone, _ = pipe.execute()
        if not gone:
            raise ScheduleNotFound(name)

    def set_paused(self, name: str, paused: bool, *, now: int | None = None) -> ScheduleInfo:
        """Pause (no tick is enqueued) or resume (from the next tick after now: ticks while paused are
        not caught up)."""
        now = now if now is not None else now_ms()
        with self._translate():
            h = cast(dict[str, str], self.r.hgetall(self._key(name)))
            if not h:
                raise ScheduleNotFound(name)
            following = _decode(h).next_after(now)
            if not self._state(args=[self.prefix, name, "1" if paused else "0", str(following)]):
                raise ScheduleNotFound(name)
        return self.get(name)

    def note_run(self, name: str, task_id: str, *, at: float) -> None:
        """Record a run started by hand as the schedule's last run."""
        with self._translate():
            self._note(args=[self.prefix, name, str(round(at * 1000)), task_id])

    # --- the tick loop ---------------------------------------------------------
    def due(self, now: int, *, limit: int = 100) -> list[str]:
        with self._translate():
            return cast(list[str], self.r.zrangebyscore(f"{self.prefix}schedules", "-inf", now, start=0, num=limit))

    def load(self, name: str) -> tuple[Schedule, int] | None:
        """A schedule's definition and next due time, or None if it is gone or paused."""
        with self._translate():
            h = cast(dict[str, str], self.r.hgetall(self._key(name)))
        if not h or h.get("paused") == "1" or not h.get("next_at"):
            return None
        return _decode(h), int(h["next_at"])

    def claim(self, schedule: Schedule, next_at: int, p: Plan, *, now: int) -> int | None:
        """Claim a schedule's due ticks: None if another worker claimed them first (or the schedule
        changed, was paused or deleted meanwhile), else how many tasks were created (a retried claim
        whose first try went through creates none: the ids are the ticks')."""
        args = [self.prefix, schedule.name, str(next_at), str(p.following), schedule.version(),
                str(self.store.settings.events_maxlen), repr(now / 1000), str(p.dropped), schedule.task,
                orjson.dumps(schedule.args).decode(), orjson.dumps(schedule.kwargs).decode(),
                "" if schedule.max_retries is None else str(schedule.max_retries),
                "" if schedule.timeout is None else repr(float(schedule.timeout))]
        for t in p.ticks:
            args += [tick_task_id(schedule.name, t), repr(t / 1000), str(t)]
        with self._translate():
            created = int(self._claim(args=args))
        return None if created < 0 else created
