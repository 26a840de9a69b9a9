"""The worker process: one Kafka consumer per priority lane, a pool of task threads, a heartbeat.

Threads:
- the main thread owns the consumers (``taskq.kafka``'s ``Consumer``; one, for the normal lane,
  unless ``priority_lanes`` is on): poll, pause/resume, commit (Kafka consumers are single-threaded);
- ``concurrency`` task threads run functions and record outcomes in Redis;
- a heartbeat thread keeps the worker's liveness key fresh.
Finished offsets flow back to the main thread through a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import queue
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .. import limits, tracing
from ..context import TaskContext
from ..errors import BrokerError, InvalidMessage, StoreError, StoreUnavailable, TaskqError
from ..kafka import Consumer, Producer, Record, Transport, transport
from ..logs import named
from ..metrics import WorkerMetrics
from ..models import TaskMessage, TaskState
from ..registry import Registry
from ..schedules import ScheduleStore
from ..settings import Settings
from ..store import NO_LIMITS, Finish, StartDecision, Store
from .execute import IsolatedRunner, Outcome, run_task, run_task_async
from .heartbeat import Heartbeat
from .offsets import OffsetTracker
from .outcomes import DeadLetters, classify
from .scheduler import Scheduler
from .ticker import Ticker

POLL_TIMEOUT_MS = 50
# While tasks are in flight the loop turns faster so outcomes are recorded promptly.
BUSY_POLL_MS = 5
COMMIT_INTERVAL = 0.2
LOOP_STALL_SECONDS = 60.0
# At most this many received-but-uncommittable offsets per worker.
MAX_BACKLOG = 10_000
# A busy record (owned by a live worker) is re-checked this often.
BUSY_RECHECK = 0.2
# While Redis is down, task threads retry their state writes this often.
STORE_RETRY = 0.5


# While lower lanes have work waiting, at least one start in this many goes to them (starvation guard).
PRIORITY_SHARE = 5


@dataclass(eq=False, slots=True)
class _Lane:
    """One priority lane: its topic's consumer and the partitions and offsets this worker holds in it."""

    priority: str
    rank: int  # 0 = the most urgent
    settings: Settings  # the worker's, with the lane's topic and group
    consumer: Consumer | None = None
    owned: dict[int, int] = field(default_factory=dict)  # partition -> assignment epoch
    stray: set[int] = field(default_factory=set)  # assigned in the consumer, not (yet) in owned
    gone: set[int] = field(default_factory=set)  # in owned, no longer (or not yet) in the consumer
    tracker: OffsetTracker = field(default_factory=OffsetTracker)

    @property
    def label(self) -> str:
        """How log lines name it: nothing for the normal lane (its lines read as they always did)."""
        return "" if self.priority == "normal" else f"{self.priority} lane "


@dataclass(slots=True)
class _Item:
    """A received message on its way to a run."""

    lane: _Lane
    partition: int
    offset: int
    epoch: int
    msg: TaskMessage
    rec: Record | None = None  # as it arrived: dead-lettered whole if the message cannot be started
    not_before: float = 0.0


@dataclass(frozen=True, slots=True)
class _Ran:
    item: _Item
    attempt: int
    outcome: Outcome
    elapsed: float


def _args_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _args_hidden(args: list[Any], kwargs: dict[str, Any]) -> str:
    """What the per-task line says of a payload it may not show: its shape, never a value."""
    return f"<{len(args)} positional, {len(kwargs)} keyword; TASKQ_LOG_ARGS=true shows them>"


class _Listener:
    def __init__(self, worker: Worker, lane: _Lane) -> None:
        self.worker = worker
        self.lane = lane

    def on_assigned(self, partitions: set[int]) -> None:
        self.worker._assign(partitions, self.lane)

    def on_revoked(self, partitions: set[int], *, lost: bool) -> None:
        self.worker._revoke(partitions, lost=lost, lane=self.lane)


class Worker:
    """Runs tasks from the tasks topic until stopped; see docs/architecture.md, "Delivery semantics"."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        registry: Registry,
        concurrency: int | None = None,
        store: Store | None = None,
        metrics: WorkerMetrics | None = None,
        log: logging.Logger | None = None,  # each line is prefixed with [worker_id]
        kafka: Transport | None = None,
    ) -> None:
        if not worker_id or len(worker_id) > 200 or any(c.isspace() for c in worker_id):
            raise TaskqError(f"worker id {worker_id!r} is invalid: use 1-200 characters without spaces")
        self.settings = settings
        self.id = worker_id
        self.registry = registry
        self.concurrency = concurrency or settings.concurrency
        self.store = store or Store(settings)
        self.kafka = kafka or transport(settings)
        self.metrics = metrics or WorkerMetrics(worker=worker_id)
        self.metrics.known_tasks(registry.names)
        self.log = named(log or logging.getLogger("taskq.worker"), worker_id)
        # A new lease per process: a restarted worker with the same id does not inherit
        # the runs of its previous life (they are taken over as lost).
        self.lease = uuid.uuid4().hex
        self.started_at = time.time()

        self._stopping = threading.Event()
        self._stopped = threading.Event()
        # An operator's "quiet" (read with each heartbeat): take no new tasks, finish the running ones,
        # hand the partitions over; "resume" joins again.
        self._quiet = threading.Event()
        self._lock = threading.Lock()
        priorities = limits.PRIORITIES if settings.priority_lanes else ("normal",)
        self._lanes = [_Lane(p, rank, settings.for_lane(p)) for rank, p in enumerate(priorities)]
        self._normal = next(lane for lane in self._lanes if lane.priority == "normal")
        if kafka is not None and len(self._lanes) > 1:
            raise TaskqError("priority lanes need the configured Kafka client (no injected transport)")
        self._epoch = 0
        self._streak = 0  # starts in a row from the most urgent lane with work (see _pick)
        self._running = 0  # tasks executing right now (task threads update it)
        # Consumer-thread state: received but unclaimed, claimed (handed to a thread), ran but unrecorded.
        self._to_start: list[_Item] = []
        self._claimed = 0
        self._active: set[str] = set()  # ids of the claimed runs
        self._to_record: list[_Ran] = []
        self._ran: queue.SimpleQueue[_Ran] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._store_failures = 0
        self._store_backoff_until = 0.0
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"taskq-{worker_id}")
        # Prefetch one extra window so a slot freed is refilled without waiting for a fetch.
        self._window = self.concurrency * 2
        self._producer: Producer | None = None
        self._scheduler: Scheduler | None = None
        self._dead_letters: DeadLetters | None = None
        self._isolated = IsolatedRunner(registry)
        self._last_turn = time.monotonic()
        # ``async def`` tasks run on one event loop thread (started when the registry has any): an
        # await costs no thread, and their slots count against ``concurrency`` like any other run.
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- public ------------------------------------------------------------
    def stop(self) -> None:
        """Ask for a graceful stop (thread- and signal-safe)."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                return
            self.log.info("%s received: finishing in-flight tasks (grace %.0fs)",
                          signal.Signals(signum).name, self.settings.shutdown_grace)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    @property
    def partitions(self) -> set[int]:
        """The partitions of the tasks topic (the normal lane) this worker owns now."""
        return set(self._normal.owned)

    @contextlib.contextmanager
    def running(self) -> Iterator[Worker]:
        """Serve on a thread for the ``with`` block, then stop gracefully (tests, notebooks, embedding).

        >>> with Worker(settings, worker_id="w1", registry=Registry.load()).running() as w:
        ...     client.wait(client.submit("add", 1, 2))
        """
        thread = threading.Thread(target=self.run, name=f"taskq-worker-{self.id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop()
            thread.join(self.settings.shutdown_grace + 10)
            if thread.is_alive():
                raise TaskqError(f"worker {self.id} did not stop within its shutdown grace")

    def health(self) -> tuple[bool, str]:
        """Liveness: the consumer loop has turned recently (a wedged loop gets the pod restarted)."""
        age = time.monotonic() - self._last_turn
        if age > LOOP_STALL_SECONDS:
            return False, f"the consumer loop has not turned for {age:.0f}s"
        return True, "ok"

    def run(self) -> bool:
        """Serve until ``stop()``; returns False if tasks were still running when the grace ran out."""
        flush_spans = tracing.configure(self.settings, service="taskq-worker")  # TASKQ_TRACING; off by default
        self._wait_for_dependencies()
        if self._producer is None:
            return True  # stopped while waiting
        heartbeat = Heartbeat(store=self.store, worker_id=self.id, fields=self._heartbeat_fields,
                              metrics=self.metrics, log=self.log, interval=self.settings.heartbeat_interval,
                              on_quiet=self._set_quiet)
        hb = threading.Thread(target=heartbeat.run, args=(self._stopped,), name="taskq-heartbeat", daemon=True)
        hb.start()
        scheduler = self._scheduler = Scheduler(store=self.store, producer=self._producer, log=self.log)
        threading.Thread(target=scheduler.run, args=(self._stopped,), name="taskq-scheduler", daemon=True).start()
        ticker = Ticker(schedules=ScheduleStore(self.store), declared=self.registry.schedules, log=self.log,
                        created=scheduler.wake)
        threading.Thread(target=ticker.run, args=(self._stopped,), name="taskq-ticker", daemon=True).start()
        if any(d.is_async for d in map(self.registry.get, self.registry.names)):
            loop = self._loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="taskq-async", daemon=True).start()
        clean = True
        try:
            self._quiet_wait()  # quieted before it started: join only once resumed
            while not self._stopping.is_set():
                self._open_consumers()
                self.log.info("ready: concurrency %d, Kafka client %s, tasks: %s", self.concurrency,
                              self.kafka.name, ", ".join(self.registry.names))
                self._serve_contained()
                clean = self._drain()
                self._close_consumers()
                if self._stopping.is_set():
                    break
                self.log.info("quiet: finished what was running, partitions handed over; taking no tasks "
                              "until resumed")
                self._quiet_wait()
        finally:
            self._close_consumers()
            self._stopped.set()
            hb.join(timeout=self.settings.heartbeat_interval * 2)
            try:
                self.store.worker_stopped(self.id, lease=self.lease)
            except StoreError as exc:
                self.log.warning("could not record the stop in Redis: %s", exc)
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._producer.close()
            flush_spans()
            self.log.info("stopped")
        return clean

    def _set_quiet(self, quiet: bool) -> None:
        if quiet and not self._quiet.is_set():
            self.log.info("quiet requested: finishing running tasks, taking no new ones")
            self._quiet.set()
        elif not quiet and self._quiet.is_set():
            self.log.info("resume requested")
            self._quiet.clear()

    def _open_consumers(self) -> None:
        for lane in self._lanes:
            kafka = self.kafka if lane is self._normal else transport(lane.settings)
            lane.consumer = kafka.consumer(client_id=f"taskq-{self.id}{'-' + lane.priority if lane.label else ''}",
                                           listener=_Listener(self, lane), log_name=self.id)

    def _close_consumers(self) -> None:
        """Leave the groups; what this worker held is its next owners' (from the committed offsets)."""
        for lane in self._lanes:
            if lane.consumer is not None:
                lane.consumer.close()
                lane.consumer = None
            with self._lock:
                lane.owned.clear()
            lane.stray, lane.gone, lane.tracker = set(), set(), OffsetTracker()

    def _quiet_wait(self) -> None:
        """While quiet: hold no partitions, but record runs that outlived the drain as they finish."""
        while self._quiet.is_set() and not self._stopping.is_set():
            self._last_turn = time.monotonic()
            self._collect_ran()
            self._turn()
            self._wake.wait(0.1)
            self._wake.clear()

    def _wait_for_dependencies(self) -> None:
        """Start even when Kafka or Redis is down: wait for both (a restart loop loses nothing)."""
        delay, said = 0.5, ""
        while not self._stopping.is_set():
            try:
                for lane in self._lanes:
                    admin = (self.kafka if lane is self._normal else transport(lane.settings)).admin()
                    try:
                        admin.ensure_topics()
                    finally:
                        admin.close()
                producer = self.kafka.producer(client_id=f"taskq-worker-{self.id}")
                try:
                    self.store.heartbeat(self.id, **self._heartbeat_fields(), first=True)
                except TaskqError:
                    producer.close()
                    raise
                self._producer = producer
                self._dead_letters = DeadLetters(settings=self.settings, producer=producer, metrics=self.metrics,
                                                 log=self.log, worker_id=self.id)
                return
            except TaskqError as exc:
                text = str(exc).splitlines()[0]
                if text != said:
                    self.log.warning("waiting for Kafka and Redis: %s", text)
                    said = text
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    # --- consumer thread ---------------------------------------------------
    def _serve_contained(self) -> None:
        """``_serve``, resumed after an unexpected error: a bug met by one turn is logged with its
        traceback and counted, and the worker goes on (a crash would only move the same input to the
        next worker, and then the next: the whole fleet would go down)."""
        while True:
            try:
                self._serve()
                return
            except Exception as exc:
                self.metrics.internal_error()
                self.log.error("the worker loop met an unexpected error and goes on: %s: %s",
                               type(exc).__name__, exc, exc_info=exc)
                if self._stopping.wait(0.5):
                    return

    def _serve(self) -> None:
        last_commit = 0.0
        while not self._stopping.is_set() and not self._quiet.is_set():
            self._last_turn = time.monotonic()
            self._wake.clear()  # set by a task thread when a run finishes
            self._collect_ran()
            self._turn()
            # Finished offsets waiting behind a slow task do not take slots (no head-of-line
            # blocking), but the uncommitted backlog is capped to bound re-delivery after a crash.
            # Each lane has its own window: a full normal lane never keeps urgent work from being fetched.
            turn = []
            for lane in self._lanes:
                free = min(self._window - lane.tracker.unfinished(), MAX_BACKLOG - lane.tracker.backlog())
                turn.append((lane, free, self._flow_control(lane, free)))
            if all(paused for _, _, paused in turn):
                # Nothing may be fetched until a run finishes: wait for that, not for Kafka. (Waiting in
                # poll() here capped a worker at about concurrency/BUSY_POLL_MS tasks per second.)
                self._wake.wait(BUSY_POLL_MS / 1000)
                timeout = 0
            else:
                busy = self._claimed or self._to_start or self._to_record
                timeout = BUSY_POLL_MS if busy else POLL_TIMEOUT_MS
            # One wait per turn: the last lane that may fetch waits, the others only take what is there.
            waiter = max((i for i, (_, _, paused) in enumerate(turn) if not paused), default=-1)
            failed = False
            for i, (lane, free, _) in enumerate(turn):
                assert lane.consumer is not None
                try:
                    batch = lane.consumer.poll(timeout if i == waiter else 0, max(free, 1))
                except BrokerError as exc:
                    self.log.warning("%spoll failed: %s", lane.label, exc)
                    failed = True
                    continue
                if batch:
                    self._receive_all(lane, batch)
            if failed:
                time.sleep(0.5)
                continue
            if self._to_start:
                self._collect_ran()
                self._turn()
            now = time.monotonic()
            if now - last_commit >= COMMIT_INTERVAL:
                for lane, _, paused in turn:
                    assert lane.consumer is not None
                    lane.consumer.maintain(paused=paused)
                    self._reconcile(lane)
                    self._commit(lane)
                last_commit = now

    def _flow_control(self, lane: _Lane, free: int) -> bool:
        """Pause every assigned partition while the window is full, resume them all once it is not.

        Decided from the consumer's own paused set on every turn: partitions assigned during a pause
        arrive unpaused and partitions kept through a rebalance stay paused, so a remembered flag
        drifts (it once left kept partitions paused for good while new ones flowed). Returns whether paused.
        """
        assert lane.consumer is not None
        try:
            if free <= 0:
                lane.consumer.pause_all()
                return True
            lane.consumer.resume_all()
        except BrokerError as exc:  # e.g. mid-rebalance; the next turn decides again
            self.log.debug("pause/resume failed: %s", exc)
        return False

    def _receive_all(self, lane: _Lane, batch: list[Record]) -> None:
        """Take a fetched batch, partition by partition."""
        by_partition: dict[int, list[Record]] = {}
        for rec in batch:
            by_partition.setdefault(rec.partition, []).append(rec)
        for partition, records in by_partition.items():
            self._receive_partition(lane, partition, records)

    def _receive_partition(self, lane: _Lane, partition: int, records: list[Record]) -> None:
        """Take fetched records of one partition, if the partition is ours."""
        consumer = lane.consumer
        assert consumer is not None
        with self._lock:
            epoch = lane.owned.get(partition)
        if epoch is None:
            # If the consumer still holds the partition, its assignment callback has not run yet (or was
            # missed): adopt it now. Dropping the records would move the consumer's position past them,
            # and the offsets committed later would skip them for good. (Seeking back instead is not
            # enough: a fetch session does not ask again for an offset it already fetched.) If the
            # consumer let the partition go, its new owner reads it from the committed offset.
            try:
                held = partition in consumer.assignment()
            except BrokerError:
                held = False
            if not held:
                return
            self.log.warning("records of %spartition %d arrived before its assignment callback; adopting it",
                             lane.label, partition)
            self._assign({partition}, lane)
            with self._lock:
                epoch = lane.owned.get(partition)
            if epoch is None:
                return
        for rec in records:
            self._receive(lane, rec, epoch)

    def _receive(self, lane: _Lane, rec: Record, epoch: int) -> None:
        lane.tracker.received(rec.partition, rec.offset)
        try:
            msg = tracing.from_headers(TaskMessage.from_bytes(rec.value), rec.headers)
        except Exception as exc:  # noqa: BLE001 - whatever the bytes do, they end as a dead letter
            why = str(exc) if isinstance(exc, InvalidMessage) else f"unreadable: {type(exc).__name__}: {exc}"
            self._reject(lane, rec, why)
            return
        self._to_start.append(_Item(lane, rec.partition, rec.offset, epoch, msg, rec))

    def _reject(self, lane: _Lane, rec: Record, why: str) -> None:
        """A message that can never run: to the dead-letter topic with its raw bytes; its offset is done."""
        assert self._dead_letters is not None
        self.metrics.invalid_message(why)
        self._dead_letters.undecodable(rec, why)
        if lane.owned.get(rec.partition) is not None:
            lane.tracker.finished(rec.partition, rec.offset)

    def _turn(self) -> None:
        """One Redis round trip per loop turn: record finished runs and claim runs for received messages."""
        if time.monotonic() < self._store_backoff_until:
            return
        batch, finishes = self._take_outcomes()
        now = time.monotonic()
        due = self._due_starts(now)
        if not batch and not due:
            return
        try:
            recorded, decisions = self._apply(finishes, due)
        except StoreUnavailable as exc:
            self._to_record = batch + self._to_record
            self._store_failed(exc)
            return
        # Anything else (a script refusing an input, an input that cannot be encoded) is about the
        # turn's content, not Redis: retrying it whole would stall the partition behind it for good.
        except Exception as exc:  # noqa: BLE001 - one bad outcome or message must not end the worker
            self._isolate(batch, finishes, due, exc)
            return
        self._store_ok()
        self._recorded(batch, finishes, recorded)
        self._started(due, decisions, now)

    def _apply(self, finishes: list[Finish], due: list[_Item]) -> tuple[list[bool], list[StartDecision]]:
        return self.store.apply(finishes, [i.msg for i in due], worker=self.id, lease=self.lease,
                                steps_started=self._scheduler.wake if self._scheduler else None,
                                limits=self._limits, max_lost_runs=self._max_lost_runs)

    def _isolate(self, batch: list[_Ran], finishes: list[Finish], due: list[_Item], exc: Exception) -> None:
        """A turn failed for a reason that is not Redis being away: something in it cannot be stored.
        Redo it item by item; an outcome that still fails is recorded as a failure saying why, and a
        message that still fails is dead-lettered whole. The rest goes on as usual."""
        self.metrics.internal_error()
        self.log.error("a turn of %d outcome(s) and %d message(s) failed (%s: %s); redoing it one by one",
                       len(finishes), len(due), type(exc).__name__, exc, exc_info=exc)
        for r, f in zip(batch, finishes, strict=True):
            try:
                recorded, _ = self._apply([f], [])
            except StoreUnavailable:
                self._to_record.append(r)  # Redis went away meanwhile: the usual retry
                continue
            except Exception as one:  # noqa: BLE001
                plain = Finish(f.task_id, f.attempt, TaskState.FAILED, run_seconds=f.run_seconds,
                               error=f"its outcome could not be recorded: {type(one).__name__}: {str(one)[:500]}")
                try:
                    recorded, _ = self._apply([plain], [])
                except Exception as again:  # noqa: BLE001
                    # Nothing more to try: the task ends dead saying why, and its offset is done, so its
                    # partition is not held up behind a run that can never be recorded.
                    self.log.error("the outcome of %s cannot be recorded (%s); ending it dead", f.task_id, again)
                    with contextlib.suppress(Exception):
                        self.store.end_unstartable(f.task_id, f"its outcome could not be recorded: {again}"[:1000])
                    if self._ours(r.item):
                        r.item.lane.tracker.finished(r.item.partition, r.item.offset)
                    continue
                f = plain
            self._recorded([r], [f], recorded)
        for item in due:
            try:
                _, decisions = self._apply([], [item])
            except StoreUnavailable:
                continue  # stays in _to_start: claimed on a later turn
            except Exception as one:  # noqa: BLE001
                self._to_start = [i for i in self._to_start if i is not item]
                why = f"cannot be started: {type(one).__name__}: {str(one)[:500]}"
                if item.rec is not None and self._ours(item):
                    self._reject(item.lane, item.rec, why)
                    try:  # its record, if it has one, must not stay queued or running with no message left
                        self.store.end_unstartable(item.msg.id, f"its message {why} (in the dead letters whole)")
                    except Exception as exc:  # noqa: BLE001
                        self.log.error("could not end the record of unstartable task %s: %s", item.msg.id, exc)
                continue
            self._started([item], decisions, time.monotonic())

    def _due_starts(self, now: float) -> list[_Item]:
        """Received messages to claim now: as many as there are free task threads."""
        if not self._to_start:
            return []
        # Messages of partitions revoked meanwhile are left to their new owner.
        self._to_start = [i for i in self._to_start if self._ours(i)]
        room = self.concurrency - self._claimed
        if room <= 0:
            return []
        ready = [i for i in self._to_start if i.not_before <= now]
        return ready[:room] if len(self._lanes) == 1 else self._pick(ready, room)

    def _pick(self, ready: list[_Item], room: int) -> list[_Item]:
        """Up to ``room`` messages, the most urgent lane first; while lower lanes have work waiting,
        every PRIORITY_SHARE-th start goes to one of them in turn, so a flood of urgent work slows
        the others down but never stops them. Within a lane, arrival order."""
        by_rank: dict[int, list[_Item]] = {}
        for item in ready:
            by_rank.setdefault(item.lane.rank, []).append(item)
        for items in by_rank.values():
            items.reverse()  # pop() takes the oldest
        out: list[_Item] = []
        while len(out) < room:
            ranks = sorted(r for r, items in by_rank.items() if items)
            if not ranks:
                break
            rank = ranks[0]
            if len(ranks) > 1 and self._streak >= PRIORITY_SHARE - 1:
                rank = ranks[1 + (len(out) % (len(ranks) - 1))]
                self._streak = 0
            elif len(ranks) > 1:
                self._streak += 1
            out.append(by_rank[rank].pop())
        return out

    def _ours(self, item: _Item) -> bool:
        """Whether the item's partition is still held in the assignment it arrived in."""
        with self._lock:
            return item.lane.owned.get(item.partition) == item.epoch

    def _started(self, due: list[_Item], decisions: list[StartDecision], now: float) -> None:
        done_ids = {id(i) for i in due}
        verbose = self.log.isEnabledFor(logging.INFO)
        for item, d in zip(due, decisions, strict=True):
            if d.action == "busy" or (d.action == "run" and item.msg.id in self._active):
                # Another live worker runs it (its partition moved mid-run), or this one does (a duplicate
                # message, or the partition came back to us mid-run): wait for that run's outcome.
                item.not_before = now + BUSY_RECHECK
                done_ids.discard(id(item))
            elif d.action == "skip":
                self.log.info("Skipped Task ID: %s (%s)", item.msg.id, d.detail)
                self.metrics.skipped(item.msg.task)
                if self._ours(item):  # revoked meanwhile: not ours to commit
                    item.lane.tracker.finished(item.partition, item.offset)
            elif d.action in ("dead", "cancelled"):
                # Its earlier run was lost with its worker and it ends here (a poison task, or a cancel).
                self.log.warning("Task %s: %s (Task ID: %s)", d.action.capitalize(), d.detail, item.msg.id)
                if d.action == "dead":
                    self.metrics.poison_task(item.msg.task)
                    assert self._dead_letters is not None
                    self._dead_letters.poison(item.msg, d.detail)
                if self._ours(item):
                    item.lane.tracker.finished(item.partition, item.offset)
            elif d.action == "held":
                # A flow-control limit holds it back: it waits in Redis, not in this worker's window.
                if self.log.isEnabledFor(logging.DEBUG):
                    self.log.debug("Held Task ID: %s (%s%s)", item.msg.id, d.detail,
                                   f", due in {max(0.0, d.until - time.time()):.2f}s" if d.until else "")
                self.metrics.held(item.msg.task, d.detail)
                if d.until is not None and self._scheduler is not None:
                    self._scheduler.due_at(d.until)
                if self._ours(item):
                    item.lane.tracker.finished(item.partition, item.offset)
            else:
                self._claimed += 1
                self._active.add(item.msg.id)
                if d.attempt > 1:
                    self.metrics.redelivered(item.msg.task)
                if verbose:  # the args are formatted only when the line is written
                    shown = (_args_text(item.msg.args) if self.settings.log_args
                             else _args_hidden(item.msg.args, item.msg.kwargs))
                    self.log.info("Received Task ID: %s | Task: %s | Args: %s", item.msg.id, item.msg.task, shown)
                self.metrics.started(item.msg.task, wait=max(0.0, time.time() - item.msg.created_at),
                                     running=self._claimed)
                defn = self.registry.find(item.msg.task)
                if d.after_loss:
                    # Its last run took its worker down with it (or ran beside what did): this one runs in
                    # a child process, so if the task is poison only the child dies, not the worker.
                    self.log.warning("Task ID: %s lost its last run with its worker; running it isolated",
                                     item.msg.id)
                    self._pool.submit(self._execute, item, d.attempt, True)
                elif self._loop is not None and defn is not None and defn.is_async and defn.memory_limit is None:
                    asyncio.run_coroutine_threadsafe(self._execute_async(item, d.attempt), self._loop)
                else:
                    self._pool.submit(self._execute, item, d.attempt)
        if done_ids:
            self._to_start = [i for i in self._to_start if id(i) not in done_ids]

    def _collect_ran(self) -> None:
        while True:
            try:
                ran = self._ran.get_nowait()
            except queue.Empty:
                return
            self._claimed -= 1
            self._active.discard(ran.item.msg.id)
            self._to_record.append(ran)

    def _take_outcomes(self) -> tuple[list[_Ran], list[Finish]]:
        """Finished runs to record now. A dead letter is produced before its task is recorded dead:
        if this worker dies in between, the message is redelivered and dead-lettered again (at least
        once), never lost. Outcomes whose dead letter Kafka refused are held back and retried."""
        if not self._to_record:
            return [], []
        batch, self._to_record = self._to_record, []
        finishes = [dataclasses.replace(classify(r.item.msg, r.attempt, r.outcome, registry=self.registry,
                                                 settings=self.settings), run_seconds=r.elapsed,
                                        traceback=r.outcome.traceback)
                    for r in batch]
        assert self._dead_letters is not None
        held = [r for r, f in zip(batch, finishes, strict=True)
                if f.status is TaskState.DEAD and not self._dead_letters.exhausted(r.item.msg, r.outcome, r.attempt)]
        if held:
            keep = {id(r) for r in held}
            pairs = [(r, f) for r, f in zip(batch, finishes, strict=True) if id(r) not in keep]
            batch, finishes = [r for r, _ in pairs], [f for _, f in pairs]
            self._to_record = held + self._to_record
            self._store_backoff_until = time.monotonic() + STORE_RETRY  # Kafka refused: retry shortly
        return batch, finishes

    def _recorded(self, batch: list[_Ran], finishes: list[Finish], recorded: list[bool]) -> None:
        if not batch:
            return
        verbose = self.log.isEnabledFor(logging.INFO)
        for r, f, ok in zip(batch, finishes, recorded, strict=True):
            self.metrics.finished(r.item.msg.task, "retried" if f.status is TaskState.RETRYING else f.status.value,
                                  r.elapsed, running=self._claimed)
            if not ok:
                self.log.info("Task %s finished but another run owns it now; outcome discarded", r.item.msg.id)
            elif r.outcome.ok:
                if verbose:
                    self.log.info("Task Completed: Result = %s",
                                  _args_text(r.outcome.result) if self.settings.log_args else "<hidden>")
            elif f.status is TaskState.RETRYING:
                self.log.info("Task Failed: %s (attempt %d; retry in %.1fs)", r.outcome.error,
                              r.attempt, max(0.0, (f.due or 0) - time.time()))
            elif f.status is TaskState.DEAD:
                self.log.info("Task Dead: %s (after %d attempts) -> %s", r.outcome.error, r.attempt,
                              self.settings.dead_topic)
            else:
                self.log.info("Task Failed: %s", r.outcome.error)
            if self._ours(r.item):
                r.item.lane.tracker.finished(r.item.partition, r.item.offset)

    def _store_failed(self, exc: StoreError) -> None:
        self.metrics.redis_error()
        if self._store_failures == 0:
            self.log.warning("Redis unavailable, retrying: %s", exc)
        self._store_failures += 1
        self._store_backoff_until = time.monotonic() + min(STORE_RETRY * self._store_failures, 5.0)

    def _store_ok(self) -> None:
        if self._store_failures:
            self.log.info("Redis is back")
        self._store_failures = 0

    def _commit(self, lane: _Lane, *, sync: bool = False) -> None:
        positions = lane.tracker.uncommitted()
        if not positions or lane.consumer is None:
            return
        try:
            lane.consumer.commit(positions, sync=sync)
            lane.tracker.mark_committed(positions)
        except BrokerError as exc:
            # Mid-rebalance commits fail; the next owner skips what Redis shows finished.
            self.log.debug("commit failed: %s", exc)

    def _drain(self) -> bool:
        """Graceful stop: claim nothing new, let claimed runs finish and record them, commit."""
        self._to_start = []  # unclaimed: the next owner of their partitions runs them
        consumers = [lane.consumer for lane in self._lanes if lane.consumer is not None]
        for consumer in consumers:
            with contextlib.suppress(BrokerError):
                consumer.pause_all()
        deadline = time.monotonic() + self.settings.shutdown_grace
        while (self._claimed or self._to_record) and time.monotonic() < deadline:
            self._collect_ran()
            self._turn()
            for consumer in consumers:
                try:
                    # Keeps the group membership alive; paused, so it returns nothing.
                    consumer.poll(BUSY_POLL_MS // len(consumers), 1)
                except BrokerError:
                    time.sleep(BUSY_POLL_MS / 1000)
            for lane in self._lanes:
                self._commit(lane)
        self._collect_ran()
        self._turn()
        for lane in self._lanes:
            self._commit(lane, sync=True)
        if self._claimed or self._to_record:
            self.log.warning("shutdown grace of %.0fs ran out with %d task(s) unfinished; "
                             "they will run again elsewhere", self.settings.shutdown_grace,
                             self._claimed + len(self._to_record))
            return False
        return True

    def _reconcile(self, lane: _Lane) -> None:
        """Make the partitions this worker runs match the consumer's assignment.

        The rebalance listener normally keeps them equal; this is a guard in case a callback is ever
        missed (the worker would otherwise drop every record of partitions Kafka gave it and sit idle).
        The stuck join seen in practice was a different failure: see kafka/kafka_python/join_guard.py.
        """
        # Both directions wait for a second check (COMMIT_INTERVAL later): the IO thread changes the
        # consumer's assignment and then runs the callback, so one look can catch them mid-way. (Acting
        # at once revoked partitions that had just been assigned, and their records were dropped.)
        assert lane.consumer is not None
        with self._lock:
            owned = set(lane.owned)
        try:
            actual = lane.consumer.assignment()
        except BrokerError:
            return
        stray, lane.stray = lane.stray, actual - owned
        if stray & lane.stray:
            self.log.warning("the %sconsumer owns %s without an assignment callback; adopting them",
                             lane.label, sorted(stray & lane.stray))
            self._assign(stray & lane.stray, lane)
            lane.stray = set()
        gone, lane.gone = lane.gone, owned - actual
        if gone & lane.gone:
            self.log.warning("the %sconsumer gave up %s without a revocation callback; releasing them",
                             lane.label, sorted(gone & lane.gone))
            self._revoke(gone & lane.gone, lost=False, lane=lane)
            lane.gone = set()

    # --- rebalance callbacks (consumer IO thread) ---------------------------
    def _assign(self, partitions: set[int], lane: _Lane) -> None:
        with self._lock:
            for p in partitions:
                if p not in lane.owned:
                    self._epoch += 1
                    lane.owned[p] = self._epoch
            owned = sorted(lane.owned)
        self.log.info("%spartitions assigned: %s (now %s)", lane.label, sorted(partitions), owned)

    def _revoke(self, partitions: set[int], *, lost: bool, lane: _Lane) -> None:
        with self._lock:
            for p in partitions:
                lane.owned.pop(p, None)
            owned = sorted(lane.owned)
        for p in partitions:
            lane.tracker.forget(p)
        self.log.info("%spartitions %s: %s (now %s)", lane.label, "lost" if lost else "revoked",
                      sorted(partitions), owned)

    def _max_lost_runs(self, msg: TaskMessage) -> int:
        """How many runs of the message's task may be lost with their worker before it ends dead."""
        defn = self.registry.find(msg.task)
        cap = defn.max_lost_runs if defn is not None else None
        return self.settings.max_lost_runs if cap is None else cap

    def _limits(self, msg: TaskMessage) -> tuple[str, ...]:
        """A message's flow-control limits as this worker's definition of its task declares them."""
        defn = self.registry.find(msg.task)
        return defn.limit_args if defn is not None else NO_LIMITS

    def _context(self, item: _Item, attempt: int) -> TaskContext:
        return TaskContext(item.msg.id, item.msg.task, attempt, self.id, self.lease, item.msg.priority,
                           backend=self.store)

    # --- task threads ------------------------------------------------------
    def _execute(self, item: _Item, attempt: int, isolate: bool = False) -> None:
        with self._lock:
            self._running += 1
        t0 = time.perf_counter()
        span = tracing.start_run(item.msg, attempt=attempt, worker=self.id)  # None unless tracing is on
        try:
            defn = self.registry.find(item.msg.task)
            timeout = item.msg.timeout or (defn.timeout if defn else None)
            memory = defn.memory_limit if defn is not None and defn.memory_limit is not None \
                else self.settings.task_memory_limit
            ctx = self._context(item, attempt)
            if timeout or isolate or (defn is not None and defn.memory_limit is not None):
                outcome = self._isolated.run(item.msg, timeout=timeout or limits.TIMEOUT_MAX,
                                             max_result_bytes=self.settings.max_result_bytes, ctx=ctx,
                                             settings=self.settings, memory_limit=memory)
            else:
                outcome = run_task(self.registry, item.msg, max_result_bytes=self.settings.max_result_bytes, ctx=ctx)
        except Exception as exc:  # noqa: BLE001 - e.g. the child process could not start
            outcome = Outcome(False, error=f"the worker could not run the task: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running -= 1
        tracing.end_run(span, outcome)
        self._ran.put(_Ran(item, attempt, outcome, time.perf_counter() - t0))
        self._wake.set()

    async def _execute_async(self, item: _Item, attempt: int) -> None:
        """An ``async def`` task on the worker's loop; its time limit cancels it (no child process)."""
        with self._lock:
            self._running += 1
        t0 = time.perf_counter()
        span = tracing.start_run(item.msg, attempt=attempt, worker=self.id)
        try:
            defn = self.registry.find(item.msg.task)
            timeout = item.msg.timeout or (defn.timeout if defn else None)
            outcome = await run_task_async(self.registry, item.msg, timeout=timeout,
                                           max_result_bytes=self.settings.max_result_bytes,
                                           ctx=self._context(item, attempt))
        except Exception as exc:  # noqa: BLE001 - a bug of ours must still end the run with an outcome
            outcome = Outcome(False, error=f"the worker could not run the task: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running -= 1
        tracing.end_run(span, outcome)
        self._ran.put(_Ran(item, attempt, outcome, time.perf_counter() - t0))
        self._wake.set()

    # --- heartbeat ---------------------------------------------------------
    def _heartbeat_fields(self) -> dict[str, Any]:
        with self._lock:
            partitions = sorted(self._normal.owned)
        return {
            "lease": self.lease,
            "partitions": partitions,
            "current_tasks": self._running,
            "concurrency": self.concurrency,
            "tasks": self.registry.describe(),
            "started_at": self.started_at,
            "quiet": self._quiet.is_set(),
        }
