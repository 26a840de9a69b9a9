"""The worker process: one Kafka consumer, a pool of task threads, a heartbeat.

Threads:
- the main thread owns the consumer: poll, pause/resume, commit (kafka-python's
  consumer is single-threaded);
- ``concurrency`` task threads run functions and record outcomes in Redis;
- a heartbeat thread keeps the worker's liveness key fresh.
Finished offsets flow back to the main thread through a queue.
"""

from __future__ import annotations

import base64
import logging
import queue
import signal
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Any

import kafka.errors as kerr
import orjson
from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from ..broker import Producer, ensure_topics, make_consumer
from ..errors import StoreError, TaskqError
from ..metrics import WorkerMetrics
from ..models import InvalidMessage, TaskMessage, TaskState
from ..registry import Registry
from ..settings import Settings
from ..store import Store
from .execute import Outcome, run_task
from .offsets import OffsetTracker

POLL_TIMEOUT_MS = 50
# A busy record (owned by a live worker) is re-checked this often.
BUSY_RECHECK = 0.2
# While Redis is down, task threads retry their state writes this often.
STORE_RETRY = 0.5


@dataclass(frozen=True, slots=True)
class _Done:
    partition: int
    offset: int
    epoch: int


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker._revoke({tp.partition for tp in revoked}, lost=False)

    def on_partitions_lost(self, lost: Any) -> None:
        self.worker._revoke({tp.partition for tp in lost}, lost=True)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker._assign({tp.partition for tp in assigned})


class Worker:
    """Runs tasks from the tasks topic until stopped; see DESIGN.md's delivery semantics."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        registry: Registry,
        concurrency: int | None = None,
        store: Store | None = None,
        metrics: WorkerMetrics | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        if not worker_id or len(worker_id) > 200 or any(c.isspace() for c in worker_id):
            raise TaskqError(f"worker id {worker_id!r} is invalid: use 1-200 characters without spaces")
        self.settings = settings
        self.id = worker_id
        self.registry = registry
        self.concurrency = concurrency or settings.concurrency
        self.store = store or Store(settings)
        self.metrics = metrics or WorkerMetrics(worker=worker_id)
        self.log = log or logging.getLogger("taskq.worker")
        # A new lease per process: a restarted worker with the same id does not inherit
        # the runs of its previous life (they are taken over as lost).
        self.lease = uuid.uuid4().hex
        self.started_at = time.time()

        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._owned: dict[int, int] = {}  # partition -> assignment epoch
        self._epoch = 0
        self._running = 0  # tasks executing right now
        self._futures: set[Future[None]] = set()
        self._done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self._tracker = OffsetTracker()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"taskq-{worker_id}")
        # Prefetch one extra window so a slot freed is refilled without waiting for a fetch.
        self._window = self.concurrency * 2
        self._producer: Producer | None = None

    # --- public ------------------------------------------------------------
    def stop(self) -> None:
        """Ask for a graceful stop (thread- and signal-safe)."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                return
            self.log.info("[%s] %s received: finishing in-flight tasks (grace %.0fs)",
                          self.id, signal.Signals(signum).name, self.settings.shutdown_grace)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    @property
    def running_tasks(self) -> int:
        return self._running

    def run(self) -> bool:
        """Serve until ``stop()``; returns False if tasks were still running when the grace ran out."""
        ensure_topics(self.settings)
        self._producer = Producer(self.settings, client_id=f"taskq-worker-{self.id}")
        self.store.heartbeat(self.id, **self._heartbeat_fields(), first=True)
        hb = threading.Thread(target=self._heartbeat_loop, name="taskq-heartbeat", daemon=True)
        hb.start()
        consumer = make_consumer(self.settings, client_id=f"taskq-{self.id}", listener=_Listener(self))
        self.log.info("[%s] ready: concurrency %d, tasks: %s", self.id, self.concurrency,
                      ", ".join(self.registry.names))
        clean = True
        try:
            self._serve(consumer)
            clean = self._drain(consumer)
        finally:
            try:
                consumer.close(autocommit=False, timeout_ms=5000)
            except kerr.KafkaError:
                self.log.debug("consumer close failed", exc_info=True)
            self._stopped.set()
            hb.join(timeout=self.settings.heartbeat_interval * 2)
            try:
                self.store.worker_stopped(self.id, lease=self.lease)
            except StoreError as exc:
                self.log.warning("[%s] could not record the stop in Redis: %s", self.id, exc)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._producer.close()
            self.log.info("[%s] stopped", self.id)
        return clean

    # --- consumer thread ---------------------------------------------------
    def _serve(self, consumer: Any) -> None:
        paused = False
        last_commit = 0.0
        while not self._stopping.is_set():
            self._collect_done()
            free = self._window - self._tracker.in_flight()
            if free <= 0 and not paused:
                consumer.pause(*consumer.assignment())
                paused = True
            elif free > 0 and paused:
                consumer.resume(*consumer.paused())
                paused = False
            try:
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=max(free, 1))
            except kerr.KafkaError as exc:
                self.log.warning("[%s] poll failed: %s", self.id, exc)
                time.sleep(0.5)
                continue
            if paused and consumer.assignment() - consumer.paused():
                # Newly assigned partitions arrive unpaused; re-evaluate on the next turn.
                paused = False
            for tp, records in batch.items():
                for rec in records:
                    self._dispatch(tp, rec)
            now = time.monotonic()
            if now - last_commit >= 0.2:
                self._commit(consumer)
                last_commit = now

    def _dispatch(self, tp: TopicPartition, rec: Any) -> None:
        with self._lock:
            epoch = self._owned.get(tp.partition)
        if epoch is None:
            return  # revoked between fetch and dispatch; the new owner reads it again
        self._tracker.received(tp.partition, rec.offset)
        try:
            msg = TaskMessage.from_bytes(rec.value)
        except InvalidMessage as exc:
            self._dead_letter_raw(tp, rec, str(exc))
            self._tracker.finished(tp.partition, rec.offset)
            return
        fut = self._pool.submit(self._handle, tp.partition, rec.offset, epoch, msg)
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)

    def _collect_done(self) -> None:
        while True:
            try:
                d = self._done.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                current = self._owned.get(d.partition)
            if current == d.epoch:
                self._tracker.finished(d.partition, d.offset)

    def _commit(self, consumer: Any, *, sync: bool = False) -> None:
        positions = self._tracker.uncommitted()
        if not positions:
            return
        offsets = {
            TopicPartition(self.settings.tasks_topic, p): OffsetAndMetadata(pos, "", -1)
            for p, pos in positions.items()
        }
        try:
            if sync:
                consumer.commit(offsets)
            else:
                consumer.commit_async(offsets)
            self._tracker.mark_committed(positions)
        except kerr.KafkaError as exc:
            # Mid-rebalance commits fail; the next owner skips what Redis shows finished.
            self.log.debug("[%s] commit failed: %s", self.id, exc)

    def _drain(self, consumer: Any) -> bool:
        """Graceful stop: take nothing new, let running tasks finish, commit."""
        for f in list(self._futures):
            f.cancel()  # queued locally, not started: the next owner runs them
        try:
            consumer.pause(*consumer.assignment())
        except kerr.KafkaError:
            pass
        deadline = time.monotonic() + self.settings.shutdown_grace
        while self._running > 0 and time.monotonic() < deadline:
            self._collect_done()
            try:
                consumer.poll(timeout_ms=POLL_TIMEOUT_MS)  # keeps the group membership alive
            except kerr.KafkaError:
                time.sleep(POLL_TIMEOUT_MS / 1000)
            self._commit(consumer)
        self._collect_done()
        self._commit(consumer, sync=True)
        if self._running > 0:
            self.log.warning("[%s] shutdown grace of %.0fs ran out with %d task(s) running; "
                             "they will run again elsewhere", self.id, self.settings.shutdown_grace, self._running)
            return False
        return True

    # --- rebalance callbacks (consumer IO thread) ---------------------------
    def _assign(self, partitions: set[int]) -> None:
        with self._lock:
            for p in partitions:
                if p not in self._owned:
                    self._epoch += 1
                    self._owned[p] = self._epoch
            owned = sorted(self._owned)
        self.log.info("[%s] partitions assigned: %s (now %s)", self.id, sorted(partitions), owned)

    def _revoke(self, partitions: set[int], *, lost: bool) -> None:
        with self._lock:
            for p in partitions:
                self._owned.pop(p, None)
            owned = sorted(self._owned)
        for p in partitions:
            self._tracker.forget(p)
        self.log.info("[%s] partitions %s: %s (now %s)", self.id, "lost" if lost else "revoked",
                      sorted(partitions), owned)

    def _still_owned(self, partition: int, epoch: int) -> bool:
        with self._lock:
            return self._owned.get(partition) == epoch

    # --- task threads ------------------------------------------------------
    def _handle(self, partition: int, offset: int, epoch: int, msg: TaskMessage) -> None:
        if self._stopping.is_set() or not self._still_owned(partition, epoch):
            return
        decision = self._with_store(lambda: self.store.start(msg, worker=self.id, lease=self.lease))
        while decision is not None and decision.action == "busy":
            # Another live worker runs it (a rebalance moved the partition mid-run): wait for its outcome.
            if self._stopping.is_set() or not self._still_owned(partition, epoch):
                return
            time.sleep(BUSY_RECHECK)
            decision = self._with_store(lambda: self.store.start(msg, worker=self.id, lease=self.lease))
        if decision is None:
            return  # stopping while Redis was down: not acknowledged, runs again elsewhere
        if decision.action == "skip":
            self.log.info("[%s] Skipped Task ID: %s (%s)", self.id, msg.id, decision.detail)
            self.metrics.skipped(msg.task)
            self._done.put(_Done(partition, offset, epoch))
            return
        if decision.attempt > 1:
            self.metrics.redelivered(msg.task)
        self.log.info("[%s] Received Task ID: %s | Task: %s | Args: %s", self.id, msg.id, msg.task,
                      orjson.dumps(msg.args).decode().replace(",", ", "))
        with self._lock:
            self._running += 1
        t0 = time.time()
        self.metrics.started(msg.task, wait=max(0.0, t0 - msg.created_at), running=self._running)
        try:
            outcome = run_task(self.registry, msg)
        finally:
            with self._lock:
                self._running -= 1
        elapsed = time.time() - t0
        self._record(msg, decision.attempt, outcome, elapsed)
        self._done.put(_Done(partition, offset, epoch))

    def _record(self, msg: TaskMessage, attempt: int, outcome: Outcome, elapsed: float) -> None:
        status = TaskState.SUCCESS if outcome.ok else TaskState.FAILED
        recorded = self._with_store(
            lambda: self.store.finish(msg.id, lease=self.lease, attempt=attempt, status=status,
                                      worker=self.id, result=outcome.result, error=outcome.error),
            keep_trying=True,
        )
        self.metrics.finished(msg.task, status.value, elapsed, running=self._running)
        if not recorded:
            self.log.info("[%s] Task %s finished but another run owns it now; outcome discarded", self.id, msg.id)
        elif outcome.ok:
            self.log.info("[%s] Task Completed: Result = %s", self.id, orjson.dumps(outcome.result).decode())
        else:
            self.log.info("[%s] Task Failed: %s", self.id, outcome.error)

    def _with_store(self, op: Any, *, keep_trying: bool = False) -> Any:
        """Run a Redis operation, waiting out a Redis outage. None if stopping meanwhile."""
        warned = False
        while True:
            try:
                return op()
            except StoreError as exc:
                self.metrics.redis_error()
                if not warned:
                    self.log.warning("[%s] Redis unavailable, retrying: %s", self.id, exc)
                    warned = True
                if self._stopping.is_set() and not keep_trying:
                    return None
                if self._stopped.is_set():
                    return None
                time.sleep(STORE_RETRY)

    def _dead_letter_raw(self, tp: TopicPartition, rec: Any, reason: str) -> None:
        self.log.warning("[%s] undecodable message at %s[%d]@%d: %s -> %s", self.id, tp.topic, tp.partition,
                         rec.offset, reason, self.settings.dead_topic)
        envelope = {
            "reason": reason,
            "topic": tp.topic,
            "partition": tp.partition,
            "offset": rec.offset,
            "value_b64": base64.b64encode(rec.value or b"").decode(),
            "worker": self.id,
            "at": time.time(),
        }
        assert self._producer is not None
        try:
            self._producer.send_raw(self.settings.dead_topic, orjson.dumps(envelope), key=rec.key)
            self.metrics.dead_lettered("(undecodable)")
        except TaskqError as exc:
            self.log.error("[%s] could not dead-letter offset %d: %s", self.id, rec.offset, exc)

    # --- heartbeat ---------------------------------------------------------
    def _heartbeat_fields(self) -> dict[str, Any]:
        with self._lock:
            partitions = sorted(self._owned)
        return {
            "lease": self.lease,
            "partitions": partitions,
            "current_tasks": self._running,
            "concurrency": self.concurrency,
            "tasks": self.registry.signatures(),
            "started_at": self.started_at,
        }

    def _heartbeat_loop(self) -> None:
        last_prune = time.monotonic()
        failing = False
        while not self._stopped.wait(self.settings.heartbeat_interval):
            try:
                self.store.heartbeat(self.id, **self._heartbeat_fields())
                if failing:
                    self.log.info("[%s] Redis is back", self.id)
                failing = False
                if time.monotonic() - last_prune > 60:
                    self.store.prune()
                    last_prune = time.monotonic()
            except StoreError as exc:
                self.metrics.redis_error()
                if not failing:
                    self.log.warning("[%s] heartbeat failed: %s", self.id, exc)
                failing = True
            with self._lock:
                owned = list(self._owned)
            self.metrics.heartbeat(partitions=owned, concurrency=self.concurrency)
