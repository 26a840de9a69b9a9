"""Redis: task records, state indexes, worker heartbeats and the live event stream.

Every state change goes through one Lua script (see ``lua``); this module only
builds arguments, translates redis-py errors and decodes what comes back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
import redis
import redis.asyncio as aioredis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from . import events, limits, lua, query, sketch
from .errors import InvalidTask, StoreError, StoreUnavailable, TaskNotFound, TaskStateError, WorkflowNotFound
from .eventhub import EventHub
from .events import Event
from .models import TERMINAL_STATES, TaskMessage, TaskRecord, TaskState, TaskType, Timing, TypeMetrics, WorkerInfo
from .settings import Settings
from .workflows import Flat, WorkflowRecord

# A lost worker's entry is dropped from the worker list after a day of silence.
WORKER_FORGET_AFTER = 24 * 3600.0
# Submissions are refused once Redis (maxmemory, noeviction) is this full: before it refuses the
# writes itself, so a task is never produced to Kafka with no room left to record it.
MEMORY_FULL_AT = 0.98
MEMORY_CHECK_SECONDS = 1.0
# Index entries of expired records looked at per script call, and calls per prune (once a minute):
# 50,000 a minute per index keeps up with ~800 tasks/s; a larger backlog is worked off over minutes.
PRUNE_BATCH = 2000
PRUNE_BATCHES = 25
# How far behind the success TTL (by creation time) that walk stays: a record expires its TTL after
# it *finished*, so entries are looked at once their tasks have had this long to wait and run. Those
# of tasks that took longer keep their entries until the long TTL trims them (listings skip them).
PRUNE_GRACE = 300.0


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map redis-py exceptions to taskq's at this one boundary."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc
    except redis.exceptions.OutOfMemoryError as exc:
        raise StoreUnavailable(f"Redis is out of memory and refuses writes: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"Redis error: {exc}") from exc


@dataclass(frozen=True, slots=True)
class StartDecision:
    """What a worker should do with a message it received."""

    # run | skip | busy | held (a flow-control limit holds it back; see lua.hold_back) | dead | cancelled
    # (a run lost with its worker ended the task: too many losses, or a cancel asked meanwhile)
    action: str
    attempt: int = 0
    detail: str = ""
    until: float | None = None  # held by a rate limit: when its reserved slot comes
    after_loss: bool = False  # run: the previous run was lost with its worker


@dataclass(frozen=True, slots=True)
class Finish:
    """One run's outcome, to record."""

    task_id: str
    attempt: int
    status: TaskState
    result: Any = None
    error: str | None = None
    due: float | None = None  # with status RETRYING: when the next attempt is produced
    run_seconds: float = 0.0  # how long the function ran (the per-type run-time histograms)
    traceback: str | None = None  # a failure's traceback, kept on the record (at most TRACEBACK_MAX)


# A failure's traceback is kept up to its last this many characters (the innermost frames).
TRACEBACK_MAX = 16_000
# A failure's error text as the record keeps it: a task that raises with a 50 MB message must not
# put 50 MB in Redis (nor in every list page and event). The cut says how much was left out.
ERROR_MAX = 8_000


def cut_error(text: str | None) -> str:
    return limits.cut_text(text, ERROR_MAX) or ""


# Per-type metrics are read for at most this many task names per call.
TYPE_METRICS_MAX = 500


def _timing(total: dict[str, float], prefix: str, sum_field: str) -> Timing:
    """Percentiles from a sketch (fields <prefix><bucket>, see taskq.sketch): each within
    sketch.RELATIVE_ERROR of the true value."""
    counts = {k[len(prefix):]: c for k, c in total.items() if k.startswith(prefix)}
    n = sum(counts.values())
    if not n:
        return Timing(None, None, None, None)
    p50, p95, p99 = sketch.quantiles(counts, (0.5, 0.95, 0.99))
    return Timing(p50, p95, p99, round(total.get(sum_field, 0.0) / n, 6), sketch.RELATIVE_ERROR)


# A message whose task has no flow-control limits (rate, per-key rate, concurrency, per-key concurrency).
NO_LIMITS = ("",) * 6
# At most this many tasks per script call: one call blocks Redis while it runs.
SCRIPT_BATCH = 200


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Store:
    """All of taskq's Redis access."""

    def __init__(self, settings: Settings, *, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        if client is None:
            client = redis.Redis.from_url(settings.redis_url, **settings.redis_options(), decode_responses=True,
                                          socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
        self.r: redis.Redis = client
        self._async: aioredis.Redis | None = None
        self._hub: EventHub | None = None
        self._memory: tuple[str | None, float] = (None, -MEMORY_CHECK_SECONDS)  # (why full, checked at)
        self._create = self.r.register_script(lua.CREATE)
        self._apply = self.r.register_script(lua.APPLY)
        self._cancel = self.r.register_script(lua.CANCEL)
        self._end_unstartable = self.r.register_script(lua.END_UNSTARTABLE)
        self._requeue = self.r.register_script(lua.REQUEUE)
        self._create_scheduled = self.r.register_script(lua.CREATE_SCHEDULED)
        self._claim_due = self.r.register_script(lua.CLAIM_DUE)
        self._idempotency = self.r.register_script(lua.IDEMPOTENCY)
        self._unqueue = self.r.register_script(lua.UNQUEUE)
        self._wf_create = self.r.register_script(lua.WF_CREATE)
        self._wf_cancel = self.r.register_script(lua.WF_CANCEL)
        self._wf_retry = self.r.register_script(lua.WF_RETRY)
        self._cc_sweep = self.r.register_script(lua.CC_SWEEP)
        self._progress = self.r.register_script(lua.PROGRESS)
        self._type_resume = self.r.register_script(lua.TYPE_RESUME)
        self._prune_expired = self.r.register_script(lua.PRUNE_EXPIRED)
        self._ttl_ms = str(int(settings.result_ttl * 1000))
        self._ttl_success_ms = str(int((settings.result_ttl_success or settings.result_ttl) * 1000))
        self._maxlen = str(settings.events_maxlen)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _eval_many(self, calls: Sequence[tuple[Script, list[str]]]) -> list[Any]:
        """Run scripts in one pipelined round trip (EVALSHA; a script Redis lost is loaded and rerun).

        redis-py's own pipelined Script call sends SCRIPT EXISTS first: one more round trip per batch.
        Calls that failed with NOSCRIPT did nothing, so running them again is safe.
        """
        with translate_errors():
            results = self._evalsha(calls)
            missing = [i for i, res in enumerate(results) if isinstance(res, NoScriptError)]
            if missing:
                for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                    script.sha = self.r.script_load(script.script)
                for i, res in zip(missing, self._evalsha([calls[i] for i in missing]), strict=True):
                    results[i] = res
            for res in results:
                if isinstance(res, Exception):
                    raise res
            return results

    def _evalsha(self, calls: Sequence[tuple[Script, list[str]]]) -> list[Any]:
        pipe = self.r.pipeline(transaction=False)
        for script, args in calls:
            pipe.evalsha(script.sha, 0, *args)
        return list(pipe.execute(raise_on_error=False))

    def memory_check_due(self) -> bool:
        """Whether ``check_room`` would ask Redis (async callers then run it off their event loop)."""
        return time.monotonic() - self._memory[1] > MEMORY_CHECK_SECONDS

    def check_room(self) -> None:
        """Raise ``StoreUnavailable`` while Redis is (nearly) out of memory; asks Redis at most once a second.

        Redis with ``maxmemory`` and the ``noeviction`` policy refuses writes when full; submitting
        then would leave a task in Kafka with no record. Evicting policies never refuse (and are
        not what taskq should run on: they drop records)."""
        why, _ = self._memory
        if self.memory_check_due():
            try:
                with translate_errors():
                    info = self.r.info("memory")
            except StoreUnavailable:
                # Unreachable is not full: Kafka takes the task and its worker writes the record.
                self._memory = (None, time.monotonic())
                return
            used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
            full = limit > 0 and info.get("maxmemory_policy") == "noeviction" and used >= limit * MEMORY_FULL_AT
            why = (f"Redis is out of memory ({used} of maxmemory {limit} bytes used); submissions are refused "
                   "until it has room (shorter TASKQ_RESULT_TTL_SUCCESS, or more memory)") if full else None
            self._memory = (why, time.monotonic())
        if why is not None:
            raise StoreUnavailable(why)

    def async_redis(self) -> aioredis.Redis:
        """The asyncio Redis pool (made once) that event streams and the API's async paths share."""
        if self._async is None:
            self._async = aioredis.Redis.from_url(
                self.settings.redis_url, **self.settings.redis_options(), decode_responses=True,
                socket_timeout=events.SOCKET_TIMEOUT, socket_connect_timeout=5)
        return self._async

    def events(self, start: str = "$", *, stop: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[Event]:
        """The live event stream (see ``taskq.events``), from an async connection pool made once."""
        return events.stream(self.async_redis(), self.key("events"), start, stop=stop or events.never)

    def event_hub(self) -> EventHub:
        """One reader of the event stream shared by many streams (``taskq.eventhub``), made once."""
        if self._hub is None:
            self._hub = EventHub(self.async_redis(), self.key("events"), max_streams=self.settings.api_max_streams)
        return self._hub

    async def close_events(self) -> None:
        """Close the event streams' reader and pool, in the event loop that used them."""
        if self._hub is not None:
            await self._hub.close()
            self._hub = None
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def close(self) -> None:
        self.r.close()

    def ping(self) -> None:
        with translate_errors():
            self.r.ping()

    # --- tasks -------------------------------------------------------------
    def _request_args(self, m: TaskMessage) -> list[str]:
        """The request fields every create-like script takes: task, args, kwargs, created, retries, timeout,
        priority, rate key, concurrency key, trace context."""
        return [
            m.task, _dumps(m.args), _dumps(m.kwargs), repr(m.created_at),
            "" if m.max_retries is None else str(m.max_retries), "" if m.timeout is None else repr(m.timeout),
            m.priority, m.rate_key or "", m.concurrency_key or "", m.trace or "",
        ]

    def create(self, messages: Sequence[TaskMessage], *, due: float | None = None) -> None:
        """Record accepted tasks as ``queued`` unless a worker already recorded them.

        With ``due`` they are delayed tasks: a worker's scheduler produces them to Kafka then.
        """
        now = repr(time.time())
        if due is not None:
            self._eval_many([(self._create_scheduled, [self.prefix, m.id, *self._request_args(m), self._maxlen,
                                                       now, repr(due)]) for m in messages])
            return
        calls = []
        for i in range(0, len(messages), SCRIPT_BATCH):
            args = [self.prefix, self._maxlen, now]
            for m in messages[i:i + SCRIPT_BATCH]:
                args += [m.id, *self._request_args(m)]
            calls.append((self._create, args))
        self._eval_many(calls)

    def claim_due(self, *, limit: int = 500, lease: float = 30.0) -> list[TaskMessage]:
        """Claim scheduled tasks that are due (delays, retries) and build their messages."""
        now = time.time()
        with translate_errors():
            flat = self._claim_due(args=[self.prefix, repr(now), repr(now + lease), str(limit)])
        pairs = [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]
        out: list[TaskMessage] = []
        for (_, gen), rec in zip(pairs, self.get_many(t for t, _ in pairs), strict=True):
            if rec is not None:
                out.append(rec.message(gen))
        return out

    def sweep_concurrency(self) -> int:
        """Hand the concurrency slots of runs that ended unseen (a lost worker) to waiting tasks."""
        with translate_errors():
            return int(self._cc_sweep(args=[self.prefix, repr(time.time())]))

    def progress(self, task_id: str, *, lease: str, value: float | None, message: str | None) -> tuple[bool, bool]:
        """Record a running task's progress; returns (recorded, cancel requested)."""
        with translate_errors():
            ok, cxl = self._progress(args=[self.prefix, task_id, lease, "" if value is None else repr(value),
                                           message or "", self._maxlen, repr(time.time())])
        return bool(ok), cxl == "1"

    # --- operator controls: pause a task type, quiet a worker --------------------
    def pause_task_type(self, task: str) -> None:
        """Workers stop starting tasks of ``task``: they wait (kept, in order) until it is resumed."""
        with translate_errors():
            self.r.sadd(self.key("paused-tasks"), task)

    def resume_task_type(self, task: str, *, batch: int = 1000) -> int:
        """Start ``task`` again; returns how many held tasks were released (oldest first)."""
        total = 0
        with translate_errors():
            while True:
                n, left = self._type_resume(args=[self.prefix, task, repr(time.time()), str(batch)])
                total += int(n)
                if int(left) == 0:
                    return total

    def paused_task_types(self) -> dict[str, int]:
        """Paused task types and how many tasks each holds back."""
        with translate_errors():
            names = sorted(cast(set[str], self.r.smembers(self.key("paused-tasks"))))
            pipe = self.r.pipeline(transaction=False)
            for name in names:
                pipe.zcard(self.key("ccw", "p", name))
            return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))

    def set_quiet(self, worker: str, quiet: bool) -> None:
        """Ask a worker to stop taking tasks (it finishes its running ones and hands its partitions
        over) or to take them again. The worker reads it with its heartbeat, every second."""
        with translate_errors():
            if quiet:
                self.r.set(self.key("quiet", worker), "1")
            else:
                self.r.delete(self.key("quiet", worker))

    def cancel_requested(self, task_id: str) -> bool:
        with translate_errors():
            return self.r.hget(self.key("task", task_id), "cxl") == "1"

    def scheduled_produced(self, task_ids: Sequence[str]) -> None:
        with translate_errors():
            if task_ids:
                self.r.zrem(self.key("scheduling"), *task_ids)

    def reserve_idempotency(self, key: str, task_id: str, *, ttl: float) -> str:
        """The id that owns ``key``: ``task_id`` if it was free, else the earlier task's id."""
        with translate_errors():
            return str(self._idempotency(args=[self.prefix, key, task_id, str(int(ttl * 1000))]))

    def release_idempotency(self, key: str, task_id: str) -> None:
        with translate_errors():
            k = self.key("idem", key)
            if self.r.get(k) == task_id:
                self.r.delete(k)

    def start_many(self, messages: Sequence[TaskMessage], *, worker: str, lease: str) -> list[StartDecision]:
        """Claim runs for a batch of received messages in one round trip."""
        return self.apply([], messages, worker=worker, lease=lease)[1]

    def finish_many(self, outcomes: Sequence[Finish], *, worker: str, lease: str) -> list[bool]:
        """Record a batch of outcomes in one round trip."""
        return self.apply(outcomes, [], worker=worker, lease=lease)[0]

    def apply(self, outcomes: Sequence[Finish], starts: Sequence[TaskMessage], *, worker: str, lease: str,
              steps_started: Callable[[], None] | None = None,
              limits: Callable[[TaskMessage], Sequence[str]] | None = None,
              max_lost_runs: Callable[[TaskMessage], int | None] | None = None,
              ) -> tuple[list[bool], list[StartDecision]]:
        """A worker's turn in one round trip: record finished runs, then claim runs for received messages.

        Returns, in order, whether each outcome was recorded (False: that run no longer owns the task)
        and the decision for each message. ``steps_started`` is called when an outcome started
        workflow steps (they wait in ``scheduled`` for a scheduler to produce them). ``limits`` gives a
        message's flow-control limits as the six strings ``lua.APPLY`` takes (``NO_LIMITS`` when none);
        ``max_lost_runs`` how many of its runs may be lost with their worker (None: no cap).
        """
        now = repr(time.time())
        args = [self.prefix, worker, lease, now, self._ttl_ms, self._maxlen, self._ttl_success_ms, str(len(outcomes))]
        for f in outcomes:
            args += [f.task_id, str(f.attempt), f.status.value, "" if f.result is None else _dumps(f.result),
                     cut_error(f.error), repr(f.due or 0.0), repr(f.run_seconds),
                     (f.traceback or "")[-TRACEBACK_MAX:] if f.status is not TaskState.SUCCESS else ""]
        for m in starts:
            cap = max_lost_runs(m) if max_lost_runs else None
            args += [m.id, str(m.gen), *self._request_args(m), *(limits(m) if limits else NO_LIMITS),
                     "" if cap is None else str(cap)]
        (rows,) = self._eval_many([(self._apply, args)])
        recorded = [bool(x) for x in rows[: len(outcomes)]]
        if steps_started is not None and any(x == 2 for x in rows[: len(outcomes)]):
            steps_started()
        decisions = []
        for row in rows[len(outcomes):]:
            action, detail = row[0], row[1]
            if action == "run":
                lost = len(row) > 2 and row[2] == "lost"
                decisions.append(StartDecision("run", attempt=int(detail), after_loss=lost))
            elif action == "held":
                until = float(row[2]) if len(row) > 2 and row[2] else None
                decisions.append(StartDecision("held", detail=str(detail), until=until))
            else:
                decisions.append(StartDecision(str(action), detail=str(detail)))
        return recorded, decisions

    def end_unstartable(self, task_id: str, error: str) -> bool:
        """End a task dead whose message could not be started (and went to the dead letters whole),
        unless it is terminal already; True when it was ended here."""
        with translate_errors():
            return bool(self._end_unstartable(args=[self.prefix, task_id, error, repr(time.time()), self._ttl_ms,
                                                    self._maxlen]))

    def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a queued or retrying task; a running one is asked to stop (``cancel_requested``)."""
        with translate_errors():
            ok, status = self._cancel(args=[self.prefix, task_id, repr(time.time()), self._ttl_ms, self._maxlen])
        if status == "missing":
            raise TaskNotFound(task_id)
        if not ok:
            raise TaskStateError(f"task {task_id} is {status}; only queued, retrying or running tasks can be cancelled")
        return self.get(task_id)

    def requeue(self, task_id: str, *, budget: int | None = None) -> TaskMessage | None:
        """Mark a failed, dead or cancelled task queued again; returns the message to produce, or None
        when a scheduler produces it (a workflow's member: its workflow runs on from it).

        A retry by hand grants a fresh retry budget: the record's max_retries, else ``budget``."""
        with translate_errors():
            ok, detail = self._requeue(args=self.requeue_args(task_id, budget=budget))
        if detail == "missing":
            raise TaskNotFound(task_id)
        if not ok:
            if str(detail).startswith("workflow "):
                raise TaskStateError(f"task {task_id} cannot run again: its {detail}")
            raise TaskStateError(f"task {task_id} is {detail}; only failed, dead or cancelled tasks can be retried")
        if ok == 2:
            return None
        return self.get(task_id).message(int(detail))

    def requeue_args(self, task_id: str, *, budget: int | None, states: Iterable[TaskState] = ()) -> list[str]:
        """``lua.REQUEUE``'s arguments; with ``states`` it refuses a task in any other state."""
        return [self.prefix, task_id, repr(time.time()), self._maxlen, "" if budget is None else str(budget),
                ",".join(s.value for s in states)]

    def unqueue(self, task_id: str, gen: int) -> None:
        """Undo ``requeue`` after Kafka refused the message."""
        with translate_errors():
            self._unqueue(args=[self.prefix, task_id, str(gen), self._ttl_ms, self._maxlen, repr(time.time())])

    def get(self, task_id: str) -> TaskRecord:
        with translate_errors():
            h = cast(dict[str, str], self.r.hgetall(self.key("task", task_id)))
        if not h:
            raise TaskNotFound(task_id)
        return TaskRecord.from_hash(h)

    def get_many(self, task_ids: Iterable[str]) -> list[TaskRecord | None]:
        ids = list(task_ids)
        with translate_errors():
            pipe = self.r.pipeline(transaction=False)
            for tid in ids:
                pipe.hgetall(self.key("task", tid))
            rows = pipe.execute()
        return [TaskRecord.from_hash(h) if h else None for h in rows]

    def list_tasks(
        self, filt: query.TaskFilter | None = None, *, status: TaskState | None = None, task: str | None = None,
        limit: int = 50, cursor: str | None = None, count: bool = True,
    ) -> query.Page:
        """A page of tasks, newest first (``taskq.query``); ``status``/``task`` are shorthands of a filter.

        ``cursor`` is a ``next_cursor`` or ``prev_cursor`` of an earlier page; with ``count`` the page
        carries the filter's total (exact from the indexes, or a bounded count)."""
        if filt is None:
            filt = query.TaskFilter(status=status, task=task)
        elif status is not None or task is not None:
            raise TypeError("give a TaskFilter or status/task, not both")
        with translate_errors():
            return query.list_page(self.r, self.key, filt, limit=limit, cursor=cursor, count=count)

    def task_names(self, *, prefix: str | None = None) -> dict[str, int]:
        """Every task name with tasks in Redis (``prefix``: those starting with it) and its task count."""
        with translate_errors():
            names = sorted(n for n in cast(set[str], self.r.smembers(self.key("task-names")))
                           if prefix is None or n.startswith(prefix))
            pipe = self.r.pipeline(transaction=False)
            for name in names:
                pipe.zcard(self.key("idx", "task", name))
            return {name: int(n) for name, n in zip(names, pipe.execute(), strict=True) if n}

    def counts(self) -> dict[str, int]:
        with translate_errors():
            pipe = self.r.pipeline(transaction=False)
            for s in TaskState:
                pipe.zcard(self.key("idx", "state", s.value))
            values = pipe.execute()
        return {s.value: int(v) for s, v in zip(TaskState, values, strict=True)}

    def throughput(self, *, window: float = 60.0) -> dict[str, float]:
        """Finished tasks per second by outcome over the last ``window`` seconds (10 s buckets)."""
        now = time.time()
        first, last = int((now - window) // 10), int(now // 10)
        with translate_errors():
            pipe = self.r.pipeline(transaction=False)
            for b in range(first + 1, last + 1):
                pipe.hgetall(self.key("tput", str(b)))
            rows = pipe.execute()
        totals: dict[str, float] = {}
        for h in rows:
            for k, v in h.items():
                totals[k] = totals.get(k, 0) + int(v)
        span = max(1.0, now - (first + 1) * 10)
        return {k: round(v / span, 3) for k, v in sorted(totals.items())}

    def throughput_series(self, *, window: float = 600.0) -> list[dict[str, Any]]:
        """Per-10-second buckets of finished tasks, oldest first (for charts)."""
        now = time.time()
        first, last = int((now - window) // 10), int(now // 10)
        with translate_errors():
            pipe = self.r.pipeline(transaction=False)
            for b in range(first + 1, last + 1):
                pipe.hgetall(self.key("tput", str(b)))
            rows = pipe.execute()
        return [
            {"t": b * 10, **{k: int(v) for k, v in h.items()}}
            for b, h in zip(range(first + 1, last + 1), rows, strict=True)
        ]

    def prune(self) -> None:
        """Drop index entries (by state, overall, per task name) of tasks older than their record's TTL."""
        now = time.time()
        success_ttl = self.settings.result_ttl_success or self.settings.result_ttl
        horizon = now - max(self.settings.result_ttl, success_ttl)  # the mixed indexes keep the longer
        with translate_errors():
            pipe = self.r.pipeline(transaction=False)
            for s in TERMINAL_STATES:
                ttl = success_ttl if s is TaskState.SUCCESS else self.settings.result_ttl
                pipe.zremrangebyscore(self.key("idx", "state", s.value), "-inf", now - ttl)
            pipe.zremrangebyscore(self.key("idx", "all"), "-inf", horizon)
            names = sorted(cast(set[str], self.r.smembers(self.key("task-names"))))
            for name in names:
                pipe.zremrangebyscore(self.key("idx", "task", name), "-inf", horizon)
                pipe.zcard(self.key("idx", "task", name))
            left = pipe.execute()[len(TERMINAL_STATES) + 1:]
            # A name whose index emptied leaves the set (creating a task of it adds it back).
            gone = [name for name, n in zip(names, left[1::2], strict=True) if n == 0]
            if gone:
                self.r.srem(self.key("task-names"), *gone)
            if success_ttl < self.settings.result_ttl:
                for idx in ["idx:all", *(f"idx:task:{n}" for n in names if n not in gone)]:
                    self._prune_expired_entries(idx, upto=now - success_ttl - PRUNE_GRACE)

    def _prune_expired_entries(self, idx: str, *, upto: float) -> int:
        """Walk ``idx`` from its cursor to ``upto`` dropping entries whose record expired; how many went.

        At most PRUNE_BATCHES batches of PRUNE_BATCH per call (once a minute): a backlog is worked
        off over several calls rather than blocking Redis."""
        dropped = 0
        for _ in range(PRUNE_BATCHES):
            examined, gone = self._prune_expired(args=[self.prefix, idx, repr(upto), PRUNE_BATCH])
            dropped += int(gone)
            if int(examined) < PRUNE_BATCH:
                break
        return dropped

    # --- workflows ---------------------------------------------------------
    def create_workflow(self, workflow_id: str, flat: Flat) -> None:
        """Record a workflow and start its first steps (a scheduler produces them)."""
        args = [self.prefix, workflow_id, flat.spec, repr(time.time()), self._maxlen]
        for index, wargs, wkwargs in flat.leaves:
            args += [str(index), wargs, wkwargs]
        with translate_errors():
            if not self._wf_create(args=args):
                raise TaskStateError(f"workflow {workflow_id} exists already")

    def workflow(self, workflow_id: str) -> WorkflowRecord:
        with translate_errors():
            h = cast(dict[str, str], self.r.hgetall(self.key("wf", workflow_id)))
        if not h:
            raise WorkflowNotFound(workflow_id)
        return WorkflowRecord.from_hash(h)

    def list_workflows(self, *, limit: int = 50) -> list[WorkflowRecord]:
        """The newest workflows first (those whose records expired are dropped from the index)."""
        with translate_errors():
            ids = cast(list[str], self.r.zrevrange(self.key("workflows"), 0, max(limit, 1) - 1))
            pipe = self.r.pipeline(transaction=False)
            for wid in ids:
                pipe.hgetall(self.key("wf", wid))
            rows = pipe.execute()
            gone = [wid for wid, h in zip(ids, rows, strict=True) if not h]
            if gone:
                self.r.zrem(self.key("workflows"), *gone)
        return [WorkflowRecord.from_hash(h) for h in rows if h]

    def cancel_workflow(self, workflow_id: str) -> WorkflowRecord:
        with translate_errors():
            ok, detail = self._wf_cancel(args=[self.prefix, workflow_id, repr(time.time()), self._ttl_ms, self._maxlen])
        if detail == "missing":
            raise WorkflowNotFound(workflow_id)
        if not ok:
            raise TaskStateError(f"workflow {workflow_id} is {detail}; only a running workflow can be cancelled")
        return self.workflow(workflow_id)

    def retry_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Run a failed workflow again from the steps that failed; the ones that succeeded keep their results."""
        with translate_errors():
            ok, detail = self._wf_retry(args=[self.prefix, workflow_id, repr(time.time()), self._maxlen])
        if detail == "missing":
            raise WorkflowNotFound(workflow_id)
        if not ok:
            raise TaskStateError(f"workflow {workflow_id} is {detail}; only a failed workflow can be retried")
        return self.workflow(workflow_id)

    # --- workers -----------------------------------------------------------
    def heartbeat(
        self, worker: str, *, lease: str, partitions: list[int], current_tasks: int, concurrency: int,
        tasks: dict[str, TaskType], started_at: float, first: bool = False, quiet: bool = False,
    ) -> bool:
        """Refresh the worker's liveness and description; returns whether an operator asked it to be quiet."""
        now = time.time()
        wkey = self.key("worker", worker)
        with translate_errors():
            pipe = self.r.pipeline(transaction=True)
            pipe.set(self.key("hb", worker), lease, px=int(self.settings.heartbeat_ttl * 1000))
            mapping: dict[str, Any] = {
                "id": worker, "lease": lease, "status": "alive", "last_heartbeat": repr(now),
                "partitions": _dumps(sorted(partitions)), "current_tasks": current_tasks,
                "concurrency": concurrency, "started_at": repr(started_at), "tasks": _dumps(tasks),
                "quiet": "1" if quiet else "0",
            }
            pipe.hset(wkey, mapping=mapping)  # type: ignore[arg-type]  # values are str/int, redis-py wants Mapping
            pipe.sadd(self.key("workers"), worker)
            if first:
                pipe.xadd(
                    self.key("events"),
                    {"type": "worker", "id": worker, "status": "alive", "ts": repr(now)},
                    maxlen=self.settings.events_maxlen, approximate=True,
                )
            pipe.get(self.key("quiet", worker))
            return bool(pipe.execute()[-1] == "1")

    def worker_stopped(self, worker: str, *, lease: str) -> None:
        now = time.time()
        with translate_errors():
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self.key("hb", worker))
            pipe.hset(
                self.key("worker", worker),
                mapping={"status": "stopped", "current_tasks": 0, "partitions": "[]", "stopped_at": repr(now)},
            )
            pipe.xadd(
                self.key("events"),
                {"type": "worker", "id": worker, "status": "stopped", "ts": repr(now)},
                maxlen=self.settings.events_maxlen, approximate=True,
            )
            pipe.execute()

    def workers(self) -> list[WorkerInfo]:
        with translate_errors():
            ids = sorted(cast(set[str], self.r.smembers(self.key("workers"))))
            pipe = self.r.pipeline(transaction=False)
            for wid in ids:
                pipe.hgetall(self.key("worker", wid))
                pipe.get(self.key("hb", wid))
            rows = pipe.execute()
            now = time.time()
            out: list[WorkerInfo] = []
            for i, wid in enumerate(ids):
                h, hb = rows[2 * i], rows[2 * i + 1]
                if not h:
                    continue
                last = float(h["last_heartbeat"]) if h.get("last_heartbeat") else None
                status: Literal["alive", "lost", "stopped"]
                if hb is not None and hb == h.get("lease"):
                    status = "alive"
                elif h.get("status") == "stopped":
                    status = "stopped"
                else:
                    status = "lost"
                if status != "alive" and last is not None and now - last > WORKER_FORGET_AFTER:
                    self.r.srem(self.key("workers"), wid)
                    continue
                alive = status == "alive"
                out.append(
                    WorkerInfo(
                        id=wid,
                        status=status,
                        last_heartbeat=last,
                        current_tasks=int(h.get("current_tasks") or 0) if alive else 0,
                        processed=int(h.get("processed") or 0),
                        failed=int(h.get("failed") or 0),
                        partitions=orjson.loads(h.get("partitions") or "[]") if alive else [],
                        concurrency=int(h.get("concurrency") or 0),
                        tasks=sorted(orjson.loads(h.get("tasks") or "{}")),
                        started_at=float(h["started_at"]) if h.get("started_at") else None,
                        quiet=alive and h.get("quiet") == "1",
                        lost_partitions=orjson.loads(h.get("partitions") or "[]") if status == "lost" else [],
                    )
                )
        # A lost worker's partitions are "lost" only until a live worker holds them: afterwards the
        # hand-over is done, and showing them still would tell an operator it is not.
        held = {p for w in out for p in w.partitions}
        for w in out:
            if w.lost_partitions:
                w.lost_partitions = [p for p in w.lost_partitions if p not in held]
        return out

    def type_metrics(self, *, window: float = 3600.0, tasks: Iterable[str] | None = None) -> list[TypeMetrics]:
        """Per task type over the last ``window`` seconds (up to 7 days), from the aggregates the
        workers keep (lua.TYPE_STATS): minute buckets up to an hour, hour buckets beyond."""
        if not 0 < window <= 7 * 86400:
            raise InvalidTask("window must be above 0 and at most 7 days (604800 s)")
        now = time.time()
        size, kind = (60, "m") if window <= 3600 else (3600, "h")
        first, last = int((now - window) // size) + 1, int(now // size)
        with translate_errors():
            known = tasks if tasks is not None else cast(set[str], self.r.smembers(self.key("task-names")))
            names = sorted(known)
            names = names[:TYPE_METRICS_MAX]
            pipe = self.r.pipeline(transaction=False)
            for name in names:
                for b in range(first, last + 1):
                    pipe.hgetall(self.key("tt", kind, name, str(b)))
            rows = pipe.execute()
        out, per = [], last - first + 1
        for i, name in enumerate(names):
            total: dict[str, float] = {}
            for h in rows[i * per:(i + 1) * per]:
                for k, v in h.items():
                    total[k] = total.get(k, 0.0) + float(v)
            counts = {k[2:]: int(v) for k, v in sorted(total.items()) if k.startswith("n:")}
            ended = sum(n for st, n in counts.items() if st != "retrying")
            bad = counts.get("failed", 0) + counts.get("dead", 0)
            out.append(TypeMetrics(
                task=name, window=window, counts=counts, finished=sum(counts.values()),
                failure_rate=round(bad / ended, 4) if ended else None,
                run=_timing(total, "R", "sr"), wait=_timing(total, "W", "sw")))
        return [m for m in out if m.finished or tasks is not None]

    def task_types(self) -> dict[str, TaskType]:
        """The tasks (with signatures and parameters) advertised by the workers that are alive."""
        types: dict[str, TaskType] = {}
        alive = [w.id for w in self.workers() if w.status == "alive"]
        with translate_errors():
            pipe = self.r.pipeline(transaction=False)
            for wid in alive:
                pipe.hget(self.key("worker", wid), "tasks")
            for raw in pipe.execute():
                for name, value in orjson.loads(raw or "{}").items():
                    types[name] = TaskType.from_json(name, value)
        for name, held in self.paused_task_types().items():
            if name in types:
                types[name] = dataclasses.replace(types[name], paused=True, held=held)
        return dict(sorted(types.items()))
