"""The Python SDK: submit tasks and read their state. The CLI and the API are built on it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import orjson

from . import bulk, deadletters, limits, tracing
from .arguments import advertised_problem
from .bulk import BulkResult, Progress
from .deadletters import DeadLetter
from .errors import InvalidTask, SubmitFailed, TaskNotFound, TaskqError, WaitTimeout, WorkerNotFound
from .eventhub import EventHub
from .events import Event
from .kafka import Admin, Producer, Transport, transport
from .models import (
    Stats,
    TaskMessage,
    TaskRecord,
    TaskState,
    TaskType,
    TypeMetrics,
    WorkerInfo,
    json_problem,
    new_task_id,
)
from .query import Page, TaskFilter
from .schedules import Schedule, ScheduleInfo, ScheduleStore
from .settings import Settings
from .store import Store
from .submitter import Pipeline, Submission
from .workflows import Chain, Group, Node, Sig, WorkflowRecord, flatten

T = TypeVar("T")

log = logging.getLogger("taskq.client")
# What the live workers advertise is re-read at most this often, and at once for a name not seen yet.
KNOWN_TASKS_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One task to submit. ``key`` orders tasks: the same key always lands on the same partition."""

    task: str
    args: Sequence[Any] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_retries: int | None = None
    timeout: float | None = None
    key: str | None = None
    delay: float | None = None  # seconds from now; the task is produced to Kafka when due
    idempotency_key: str | None = None  # the same key within the TTL returns the first task's id
    priority: str = "normal"  # high | normal | low: the lane it travels in
    rate_key: str | None = None  # counts against its task's key_rate_limit under this key
    concurrency_key: str | None = None  # counts against its task's key_concurrency under this key
    trace: str | None = None  # a W3C traceparent to carry; None: the current span's, if tracing is on


class Client:
    """Submit tasks to Kafka and read their records from Redis.

    >>> client = Client()  # TASKQ_* settings from the environment; or Client(Settings(...))
    >>> tid = client.submit("add", 1, 2)
    >>> client.wait(tid, timeout=10).result
    3
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 producer: Producer | None = None) -> None:
        # No settings: read TASKQ_* from the environment, as the CLI does.
        self.settings = settings = settings if settings is not None else Settings()
        self.store = store or Store(settings)
        self._producer = producer
        self._pipeline: Pipeline | None = None
        self._kafka: Transport | None = None
        self._admin: Admin | None = None
        self._known: tuple[frozenset[str], float] = (frozenset(), -KNOWN_TASKS_SECONDS)
        self._types: dict[str, TaskType] = {}  # what known_tasks last read, with the signatures
        self._lag: tuple[dict[int, int] | None, float] = (None, 0.0)

    @property
    def kafka(self) -> Transport:
        """The configured Kafka client library (``TASKQ_KAFKA_CLIENT``)."""
        if self._kafka is None:
            self._kafka = transport(self.settings)
        return self._kafka

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.kafka.producer()
        return self._producer

    @property
    def enqueue_blocks(self) -> bool:
        """Whether ``submit_nowait`` may block its caller: no producer yet (connecting blocks), or a
        Kafka client that waits inside its send (kafka-python). Event loops call it from a thread then."""
        return self._producer is None or self._producer.enqueue_blocks

    @property
    def admin(self) -> Admin:
        """One Kafka admin connection, reused by readiness checks and lag reads."""
        if self._admin is None:
            self._admin = self.kafka.admin(timeout=3.0)
        return self._admin

    def known_tasks_stale(self, wanted: Sequence[str] = ()) -> bool:
        """Whether ``known_tasks(wanted)`` would read Redis (the API then calls it off its event loop)."""
        names, at = self._known
        return time.monotonic() - at > KNOWN_TASKS_SECONDS or not set(wanted) <= names

    def known_tasks(self, wanted: Sequence[str] = ()) -> list[str] | None:
        """Task names the live workers advertise (None while none does), from a short-lived cache.

        A name in ``wanted`` that the cache lacks re-reads Redis first, so a task that a worker
        started advertising a moment ago is never refused; known names cost no round trip.
        """
        names, _ = self._known
        if self.known_tasks_stale(wanted):
            names = frozenset(self.task_types())
        return sorted(names) or None

    def lag(self, *, max_age: float = 0.0) -> dict[int, int]:
        """Consumer lag of the worker group per partition; raises ``BrokerError``.

        With ``max_age``, a reading at most that many seconds old is reused (dashboards and
        scrapes ask often; Kafka is asked at most once per ``max_age``)."""
        lag, at = self._lag
        if lag is None or time.monotonic() - at > max_age:
            lag = self.admin.lag()
            self._lag = (lag, time.monotonic())
        return dict(lag)

    # --- inspect -----------------------------------------------------------
    def workers(self) -> list[WorkerInfo]:
        """Every worker seen in the last day: alive, lost (heartbeat expired) or stopped."""
        return self.store.workers()

    def type_metrics(self, *, window: float = 3600.0, tasks: Sequence[str] | None = None) -> list[TypeMetrics]:
        """Per task type over the last ``window`` seconds (at most 7 days): outcomes, failure rate,
        p50/p95/p99 run and wait times, from bounded aggregates the workers keep in Redis."""
        return self.store.type_metrics(window=window, tasks=tasks)

    def quiet_worker(self, worker_id: str, *, quiet: bool = True) -> WorkerInfo:
        """Ask a worker to take no new tasks (it finishes its running ones and hands its partitions to
        the others, within a second), or with ``quiet=False`` to take tasks again."""
        known = {w.id: w for w in self.workers()}
        if worker_id not in known:
            raise WorkerNotFound(worker_id)
        self.store.set_quiet(worker_id, quiet)
        return known[worker_id]

    # --- dead letters (taskq dead, /api/dead-letters) --------------------------------------
    def dead_letters(self, *, limit: int = 50) -> list[DeadLetter]:
        """The newest dead letters (tasks that ended dead, messages that could never run), newest first."""
        return deadletters.newest(self.kafka, self.settings, limit=limit)

    def dead_letter(self, partition: int, offset: int) -> DeadLetter:
        """One dead letter by its place in the dead-letter topic; ``DeadLetterNotFound`` if none is there."""
        return deadletters.one(self.kafka, self.settings, partition, offset)

    def replay_dead_letter(self, partition: int, offset: int, *, task: str | None = None,
                           args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None) -> str:
        """Submit a dead letter again as a new task (a new id): its own task and arguments, or the
        corrected ``task``/``args``/``kwargs`` given. A message that could never run has none of its
        own to reuse: ``task`` and ``args`` are then required."""
        d = self.dead_letter(partition, offset)
        name = task or d.task
        if name is None or (args is None and d.args is None):
            raise InvalidTask(f"dead letter {d.position} is a message that never decoded ({d.reason}): "
                              "give the task and its arguments to submit in its place")
        if d.body.get("cut") and args is None and kwargs is None:
            raise InvalidTask(f"dead letter {d.position} keeps only a preview of its arguments ({d.body['cut']}): "
                              "give the arguments to submit")
        request = TaskRequest(name, tuple(args if args is not None else d.args or ()),
                              dict(kwargs if kwargs is not None else d.kwargs or {}))
        return self.submit_many([request])[0]

    def pause_task_type(self, task: str) -> dict[str, object]:
        """Workers stop starting tasks of ``task``; they are kept and run in order once resumed."""
        if why := limits.task_name_problem(task):
            raise InvalidTask(why)
        self.store.pause_task_type(task)
        return {"task": task, "paused": True}

    def resume_task_type(self, task: str) -> dict[str, object]:
        """Start ``task`` again; its held tasks are produced oldest first. Returns how many."""
        if why := limits.task_name_problem(task):
            raise InvalidTask(why)
        return {"task": task, "paused": False, "released": self.store.resume_task_type(task)}

    def paused_task_types(self) -> dict[str, int]:
        """Paused task types and how many tasks each holds back now."""
        return self.store.paused_task_types()

    def task_types(self) -> dict[str, TaskType]:
        """The tasks live workers can run, with their signatures and parameters."""
        types = self.store.task_types()
        self._known, self._types = (frozenset(types), time.monotonic()), types
        return types

    def list_tasks(self, filt: TaskFilter | None = None, *, status: TaskState | str | None = None,
                   task: str | None = None, task_prefix: str | None = None, worker: str | None = None,
                   since: float | None = None, until: float | None = None, q: str | None = None,
                   limit: int = 50, cursor: str | None = None, count: bool = True) -> Page:
        """Tasks newest first that match a filter (a ``TaskFilter``, or its fields as keywords).

        Pass ``next_cursor`` or ``prev_cursor`` back as ``cursor`` for the next or previous page;
        ``total`` counts the whole filter (``total_exact`` False: a lower bound).

        >>> page = client.list_tasks(status="dead", task_prefix="report.", q="timeout")
        """
        if filt is None:
            filt = TaskFilter(status=status, task=task, task_prefix=task_prefix, worker=worker,  # type: ignore[arg-type]
                              since=since, until=until, q=q)
        return self.store.list_tasks(filt, limit=limit, cursor=cursor, count=count)

    def task_names(self, *, prefix: str | None = None) -> dict[str, int]:
        """Every task name with tasks in Redis, and how many it has (for a filter's choices)."""
        return self.store.task_names(prefix=prefix)

    # --- bulk actions (taskq.bulk) ------------------------------------------
    def retry_all(self, filt: TaskFilter, *, dry_run: bool = False, progress: Progress | None = None) -> BulkResult:
        """Retry every failed or dead task the filter matches (its ``status``: failed, dead or
        cancelled), each produced to Kafka once, with a fresh retry budget; ``dry_run`` counts them."""
        return bulk.retry(self, filt, dry_run=dry_run, progress=progress)

    def cancel_all(self, filt: TaskFilter, *, dry_run: bool = False, progress: Progress | None = None) -> BulkResult:
        """Cancel every queued or retrying task the filter matches."""
        return bulk.cancel(self, filt, dry_run=dry_run, progress=progress)

    def purge(self, filt: TaskFilter, *, older_than: float, dry_run: bool = False,
              progress: Progress | None = None) -> BulkResult:
        """Delete the finished tasks the filter matches that finished more than ``older_than`` s ago."""
        return bulk.purge(self, filt, older_than=older_than, dry_run=dry_run, progress=progress)

    def stats(self, *, lag_max_age: float = 2.0) -> Stats:
        """Counts per state, finished tasks/s over the last minute, lag (None if Kafka is down), live workers."""
        try:
            lag: dict[str, int] | None = {str(p): n for p, n in self.lag(max_age=lag_max_age).items()}
        except TaskqError:
            lag = None
        return Stats(counts=self.store.counts(), workers_alive=sum(w.status == "alive" for w in self.workers()),
                     throughput=self.store.throughput(), lag=lag,
                     lag_total=sum(lag.values()) if lag is not None else None)

    def throughput_series(self) -> list[dict[str, int]]:
        """Finished tasks per 10 s bucket over the last 10 minutes, by outcome."""
        return self.store.throughput_series()

    def ready(self) -> dict[str, str]:
        """``{"redis": "ok", "kafka": "ok"}``, or what is wrong with each."""
        checks: dict[str, str] = {}
        try:
            self.store.ping()
            checks["redis"] = "ok"
        except TaskqError as exc:
            checks["redis"] = str(exc)
        try:
            self.admin.ping(timeout=3.0)
            checks["kafka"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, and we say which
            checks["kafka"] = f"Kafka is unreachable: {exc}"
        return checks

    def events(self, start: str = "$", *, stop: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[Event]:
        """Live task and worker changes after ``start`` (a stream id, or ``$``: only new ones).

        >>> async for event in client.events():
        ...     print(event.kind, event.data)
        """
        return self.store.events(start, stop=stop)

    def event_hub(self) -> EventHub:
        """Many live streams fed by one Redis reader, at most ``api_max_streams`` at once (the HTTP API's)."""
        return self.store.event_hub()

    async def aclose(self) -> None:
        """``close()`` for a client whose event streams ran in an event loop (the HTTP API)."""
        await self.store.close_events()
        self.close()

    def close(self, *, raise_errors: bool = True) -> None:
        """Flush pipelined submissions (raises ``SubmitFailed`` if any failed), then release connections."""
        try:
            if self._pipeline is not None:
                try:
                    self._pipeline.close(self.settings.submit_timeout)
                except SubmitFailed as exc:
                    if raise_errors:
                        raise
                    log.error("%s", exc)
        finally:
            if self._producer is not None:
                self._producer.close()
            if self._admin is not None:
                self._admin.close()
            self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # An exception already leaving the block is not replaced by a flush failure (that is logged).
        self.close(raise_errors=exc_type is None)

    # --- submit ------------------------------------------------------------
    def submit(self, task: str | Node, *args: Any, _max_retries: int | None = None, _timeout: float | None = None,
               _key: str | None = None, _delay: float | None = None, _idempotency_key: str | None = None,
               _priority: str = "normal", _rate_key: str | None = None, _concurrency_key: str | None = None,
               **kwargs: Any) -> str:
        """Submit one task; returns its id once Kafka has acknowledged it.

        Its Redis record is written right after, by the recorder thread (as for ``submit_nowait``):
        this client's own reads (``get``, ``wait``, ``cancel``, ``retry``) wait for it, and
        ``flush``/``close`` finish it; a worker that starts the task first writes the record itself.
        Options are underscore-prefixed so they never collide with the task's own keyword arguments.
        Given a workflow (``chain``, ``group``, ``chord``, ``sig``) it is ``submit_workflow``.
        """
        if isinstance(task, (Sig, Chain, Group)):
            if args or kwargs:
                raise InvalidTask("a workflow takes no arguments of its own: give them to its steps")
            return self.submit_workflow(task)
        req = TaskRequest(task, args, kwargs, max_retries=_max_retries, timeout=_timeout, key=_key, delay=_delay,
                          idempotency_key=_idempotency_key, priority=_priority, rate_key=_rate_key,
                          concurrency_key=_concurrency_key)
        if req.delay:
            return self.submit_many([req])[0]  # Redis only until due: nothing to wait for in Kafka
        msg = self._message(req, None)
        spans = tracing.submitting([msg])
        if spans is None:
            return self._submit_one(req, msg)
        with spans:
            return self._submit_one(req, spans.messages[0])

    def _submit_one(self, req: TaskRequest, msg: TaskMessage) -> str:
        self.store.check_room()  # before Kafka: a task is never produced with no room to record it
        key = req.idempotency_key
        if key is not None:
            owner = self.store.reserve_idempotency(key, msg.id, ttl=self.settings.idempotency_ttl)
            if owner != msg.id:
                return owner  # submitted before: same id, nothing enqueued twice
        try:
            self.pipeline.submit_acked(msg, key=req.key, timeout=self.settings.submit_timeout)
        except BaseException:
            if key is not None:
                self.store.release_idempotency(key, msg.id)
            raise
        return msg.id

    def _recorded(self, task_id: str) -> None:
        """Reads see this client's own submissions: wait until the recorder wrote ``task_id``'s record."""
        if self._pipeline is not None:
            self._pipeline.wait_recorded(task_id, self.settings.submit_timeout)

    def submit_nowait(self, task: str, *args: Any, _max_retries: int | None = None, _timeout: float | None = None,
                      _key: str | None = None, _delay: float | None = None, _idempotency_key: str | None = None,
                      _priority: str = "normal", _rate_key: str | None = None, _concurrency_key: str | None = None,
                      **kwargs: Any) -> Submission:
        """Submit one task without waiting for Kafka: returns a :class:`Submission` at once.

        Messages are batched by the producer and recorded in Redis when Kafka acknowledges them
        (never before). Call ``flush()`` (``close()`` does) to wait for all of them; it raises
        ``SubmitFailed`` if Kafka refused any. Same options as ``submit``.
        """
        req = TaskRequest(task, args, kwargs, max_retries=_max_retries, timeout=_timeout, key=_key, delay=_delay,
                          idempotency_key=_idempotency_key, priority=_priority, rate_key=_rate_key,
                          concurrency_key=_concurrency_key)
        return self.submit_request_nowait(req)

    def submit_request_nowait(self, req: TaskRequest, *, known_tasks: Sequence[str] | None = None) -> Submission:
        """``submit_nowait`` for a prepared request; with ``known_tasks`` other names are refused."""
        msg = self._message(req, known_tasks)
        spans = tracing.submitting([msg])
        if spans is None:
            return self._submit_nowait(req, msg)
        try:
            sub = self._submit_nowait(req, spans.messages[0])
        except BaseException as exc:
            spans.end(exc)
            raise
        sub.add_done_callback(lambda s: _end_spans(spans, s))  # the span lasts until Kafka's answer
        return sub

    def _submit_nowait(self, req: TaskRequest, msg: TaskMessage) -> Submission:
        self.store.check_room()  # before Kafka: a task is never produced with no room to record it
        release = None
        if req.idempotency_key is not None:
            owner = self.store.reserve_idempotency(req.idempotency_key, msg.id, ttl=self.settings.idempotency_ttl)
            if owner != msg.id:
                return Submission.completed(owner)  # submitted before: nothing enqueued twice
            key = req.idempotency_key
            release = lambda: self.store.release_idempotency(key, msg.id)  # noqa: E731
        if req.delay:
            self.store.create([msg], due=time.time() + req.delay)  # Kafka sees it when due
            return Submission.completed(msg.id)
        try:
            return self.pipeline.submit(msg, key=req.key, on_fail=release)
        except BaseException:
            if release is not None:
                release()
            raise

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every ``submit_nowait`` so far; raises ``SubmitFailed`` if Kafka refused any."""
        if self._pipeline is not None:
            self._pipeline.flush(self.settings.submit_timeout if timeout is None else timeout)

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(self.producer, self.store)
        return self._pipeline

    def submit_many(self, requests: Sequence[TaskRequest], *, known_tasks: Sequence[str] | None = None) -> list[str]:
        """Submit a batch: one produce round trip and one Redis pipeline for all of them.

        With ``known_tasks``, names outside it are refused before anything is sent.
        """
        if not requests:
            return []
        messages = [self._message(r, known_tasks) for r in requests]
        spans = tracing.submitting(messages)
        if spans is None:
            return self._submit_many(requests, messages)
        with spans:
            return self._submit_many(requests, spans.messages)

    def _submit_many(self, requests: Sequence[TaskRequest], messages: list[TaskMessage]) -> list[str]:
        self.store.check_room()  # before Kafka: a task is never produced with no room to record it
        ids = [m.id for m in messages]
        fresh: list[int] = []
        reserved: list[tuple[str, str]] = []
        for i, (r, m) in enumerate(zip(requests, messages, strict=True)):
            if r.idempotency_key is not None:
                owner = self.store.reserve_idempotency(r.idempotency_key, m.id, ttl=self.settings.idempotency_ttl)
                if owner != m.id:
                    ids[i] = owner  # submitted before: same id, nothing enqueued twice
                    continue
                reserved.append((r.idempotency_key, m.id))
            fresh.append(i)
        now_idx = [i for i in fresh if not requests[i].delay]
        try:
            if now_idx:
                self.producer.send([messages[i] for i in now_idx], keys=[requests[i].key for i in now_idx])
        except BaseException:
            for key, tid in reserved:
                self.store.release_idempotency(key, tid)
            raise
        # Kafka has them: from here they exist even if this write fails (the worker that runs them
        # creates the record). Raising now would make the caller submit them a second time.
        if now_idx:
            try:
                self.store.create([messages[i] for i in now_idx])
            except TaskqError as exc:
                log.warning("%d task(s) accepted by Kafka but not recorded in Redis yet (%s); "
                            "they show up when a worker starts them", len(now_idx), exc)
        now = time.time()
        for i in fresh:
            delay = requests[i].delay
            if delay:
                self.store.create([messages[i]], due=now + delay)
        return ids

    def _message(self, r: TaskRequest, known_tasks: Sequence[str] | None) -> TaskMessage:
        if why := limits.task_name_problem(r.task):
            raise InvalidTask(why)
        if known_tasks is not None and r.task not in known_tasks:
            raise InvalidTask(f"unknown task {r.task!r}; known: {', '.join(sorted(known_tasks)) or '(none)'}")
        for why in (limits.max_retries_problem(r.max_retries), limits.timeout_problem(r.timeout),
                    limits.key_problem(r.key), limits.delay_problem(r.delay),
                    limits.key_problem(r.idempotency_key, "idempotency_key"), limits.priority_problem(r.priority),
                    limits.key_problem(r.rate_key, "rate_key"),
                    limits.key_problem(r.concurrency_key, "concurrency_key"),
                    limits.traceparent_problem(r.trace)):
            if why:
                raise InvalidTask(why)
        if r.priority != "normal" and not self.settings.priority_lanes:
            raise InvalidTask(f"priority {r.priority!r} needs the priority lanes, which are off: set "
                              "TASKQ_PRIORITY_LANES=true on the workers and the submitters")
        args, kwargs = list(r.args), dict(r.kwargs)
        if why := json_problem(args, "args") or json_problem(kwargs, "kwargs"):
            raise InvalidTask(why)
        # The signature a live worker advertises: a wrong argument is refused before it is sent.
        advertised = self._types.get(r.task) if known_tasks is not None else None
        if advertised is not None and (why := advertised_problem(advertised.signature, advertised.params, args,
                                                                 kwargs)):
            raise InvalidTask(why)
        msg = TaskMessage(
            id=new_task_id(), task=r.task, args=args, kwargs=kwargs,
            max_retries=r.max_retries, timeout=float(r.timeout) if r.timeout is not None else None,
            priority=r.priority, rate_key=r.rate_key, concurrency_key=r.concurrency_key,
            trace=r.trace if r.trace is not None else tracing.current_traceparent(),
        )
        try:
            size = len(msg.to_bytes())
        except TypeError as exc:
            raise InvalidTask(f"arguments must be JSON serializable: {exc}") from exc
        if size > self.settings.max_body_bytes:
            raise InvalidTask(f"task payload is {size} bytes; the limit is {self.settings.max_body_bytes}")
        return msg

    # --- workflows ---------------------------------------------------------
    def submit_workflow(self, workflow: Node, *, only_known: bool = False) -> WorkflowRef:
        """Record a workflow and start it; returns its id (a ``WorkflowRef``: ``.status()``, ``.wait()``).

        Its first steps are produced to Kafka by a worker's scheduler, like delayed tasks; each
        later step is started by the worker that records its predecessor's outcome. With
        ``only_known`` (the API's rule) task names no live worker advertises are refused.
        """
        flat = flatten(workflow)
        known_tasks = self.known_tasks(flat.tasks) if only_known else None
        if known_tasks is not None and (unknown := sorted(set(flat.tasks) - set(known_tasks))):
            raise InvalidTask(f"unknown task(s) {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(known_tasks)) or '(none)'}")
        self.store.check_room()
        wid = new_task_id()
        self.store.create_workflow(wid, flat)
        return WorkflowRef(wid, self)

    def workflow(self, workflow_id: str) -> WorkflowRecord:
        return self.store.workflow(workflow_id)

    def list_workflows(self, *, limit: int = 50) -> list[WorkflowRecord]:
        return self.store.list_workflows(limit=limit)

    def wait_workflow(self, workflow_id: str, *, timeout: float = 60.0) -> WorkflowRecord:
        """Block until the workflow succeeded, failed or was cancelled."""
        def ended() -> WorkflowRecord | None:
            rec = self.store.workflow(workflow_id)
            return rec if rec.done else None

        return _poll(ended, timeout=timeout, what=f"workflow {workflow_id}")

    def cancel_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Stop a running workflow: nothing more starts, queued steps are cancelled, running ones finish."""
        return self.store.cancel_workflow(workflow_id)

    def retry_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Run a failed workflow again from its failed steps."""
        return self.store.retry_workflow(workflow_id)

    # --- read --------------------------------------------------------------
    def get(self, task_id: str) -> TaskRecord:
        self._recorded(task_id)
        return self.store.get(task_id)

    # --- periodic schedules ----------------------------------------------------
    @cached_property
    def schedule_store(self) -> ScheduleStore:
        return ScheduleStore(self.store)

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its next and last run and the last run's outcome, the next due first."""
        return self.schedule_store.list_all()

    def schedule(self, name: str) -> ScheduleInfo:
        return self.schedule_store.get(name)

    def add_schedule(self, schedule: Schedule | str, task: str | None = None, *,
                     known_tasks: Sequence[str] | None = None, **options: Any) -> ScheduleInfo:
        """Create a schedule from a ``Schedule`` or its fields; ``ScheduleExists`` if the name is taken.

        >>> client.add_schedule("nightly", "report", cron="0 3 * * *", timezone="Europe/Berlin")
        """
        if not isinstance(schedule, Schedule):
            schedule = Schedule(schedule, task, **options)  # type: ignore[arg-type]  # validated there
        if known_tasks is not None and schedule.task not in known_tasks:
            raise InvalidTask(f"unknown task {schedule.task!r}; known: {', '.join(sorted(known_tasks)) or '(none)'}")
        return self.schedule_store.create(schedule)

    def delete_schedule(self, name: str) -> None:
        self.schedule_store.delete(name)

    def pause_schedule(self, name: str) -> ScheduleInfo:
        return self.schedule_store.set_paused(name, True)

    def resume_schedule(self, name: str) -> ScheduleInfo:
        """Resume from the next tick after now (ticks while paused are not caught up)."""
        return self.schedule_store.set_paused(name, False)

    def run_schedule_now(self, name: str) -> str:
        """Submit one extra run of a schedule's task now (through Kafka like any submit); returns its id."""
        s = self.schedule_store.get(name)
        req = TaskRequest(s.task, s.args, s.kwargs, max_retries=s.max_retries, timeout=s.timeout)
        (tid,) = self.submit_many([req])
        self.schedule_store.note_run(name, tid, at=time.time())
        return tid

    def wait(self, task_id: str, *, timeout: float = 60.0) -> TaskRecord:
        """Block until the task reaches a terminal state."""
        self._recorded(task_id)
        def ended() -> TaskRecord | None:
            try:
                rec = self.store.get(task_id)
            except TaskNotFound:
                return None  # accepted by Kafka, record not written yet
            return rec if rec.status.terminal else None

        return _poll(ended, timeout=timeout, what=f"task {task_id}")

    def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a queued or retrying task; a worker that receives it later skips it."""
        self._recorded(task_id)
        return self.store.cancel(task_id)

    def retry(self, task_id: str) -> TaskRecord:
        """Run a failed, dead or cancelled task again (same id, attempts keep counting), with a
        fresh retry budget (docs/http-api.md, "Manual retry")."""
        self._recorded(task_id)
        rec = self.store.get(task_id)
        budget = None if rec.max_retries is not None else bulk.retry_budgets(self, [rec.task])[rec.task]
        msg = self.store.requeue(task_id, budget=budget)
        if msg is None:  # a workflow's step: a scheduler produces it
            return self.store.get(task_id)
        try:
            self.producer.send([msg])
        except BaseException:
            self.store.unqueue(task_id, msg.gen)
            raise
        return self.store.get(task_id)


def _end_spans(spans: tracing.Submitting, sub: Submission) -> None:
    try:
        sub.result(0)
    except TaskqError as exc:
        spans.end(exc)
        return
    spans.end()


def _poll(read: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Call ``read`` until it returns a value (5 ms apart, doubling to 200 ms); ``WaitTimeout`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = read()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what} did not finish within {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class WorkflowRef(str):
    """A workflow's id, which can also tell the workflow's state and wait for it."""

    _client: Client

    def __new__(cls, workflow_id: str, client: Client) -> WorkflowRef:
        ref = super().__new__(cls, workflow_id)
        ref._client = client
        return ref

    def status(self) -> WorkflowRecord:
        return self._client.workflow(str(self))

    def wait(self, timeout: float = 60.0) -> WorkflowRecord:
        return self._client.wait_workflow(str(self), timeout=timeout)


def parse_cli_value(text: str) -> Any:
    """CLI arguments are JSON when they parse as JSON (``1``, ``[1,2]``, ``true``), else strings."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
