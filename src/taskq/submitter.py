"""Pipelined submission: hand a task to Kafka and return at once; record it when Kafka acks.

``Client.submit`` waits for Kafka's acknowledgement on every call (one round trip: 1-2 ms with
kafka-python, well under 1 ms with librdkafka) and leaves the Redis record to the recorder thread
(``Pipeline.submit_acked``), so a plain submit loop pays one round trip per task, not two.
``Client.submit_nowait`` returns a :class:`Submission` immediately: the producer batches messages,
and the recorder thread writes the Redis records of acknowledged messages in pipelines. The
client's own reads of a task wait until its record is written (``Pipeline.wait_recorded``).
The contract of docs/architecture.md still holds: a task is visible as ``queued`` only after
Kafka acknowledged it, and a message Kafka refused leaves nothing behind.
``Client.flush()`` waits for every outstanding submission and raises if any failed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import BrokerUnavailable, SubmitFailed, TaskqError
from .kafka import Producer
from .models import TaskMessage
from .store import Store

log = logging.getLogger("taskq.submitter")
# Redis records of acknowledged messages are written in pipelines of at most this many.
RECORD_BATCH = 1000


@dataclass(eq=False, slots=True)
class Submission:
    """A task handed to Kafka; ``result()`` blocks until Kafka acknowledged it and returns its id."""

    id: str
    _done: threading.Event = field(default_factory=threading.Event)
    _error: TaskqError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _callbacks: list[Callable[[Submission], None]] = field(default_factory=list)

    @classmethod
    def completed(cls, task_id: str) -> Submission:
        sub = cls(task_id)
        sub._done.set()
        return sub

    def done(self) -> bool:
        return self._done.is_set()

    def add_done_callback(self, fn: Callable[[Submission], None]) -> None:
        """Call ``fn(self)`` once this submission is acknowledged or failed (at once if it is).

        It runs on the recorder thread: hand over to your own loop there (the API does)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def result(self, timeout: float | None = None) -> str:
        if not self._done.wait(timeout):
            raise SubmitFailed(f"task {self.id}: Kafka has not acknowledged it within {timeout:g}s")
        if self._error is not None:
            raise self._error
        return self.id

    def _finish(self, error: TaskqError | None) -> None:
        with self._lock:
            self._error = error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("a submission callback failed")


@dataclass(slots=True)
class _Acked:
    submission: Submission
    message: TaskMessage
    error: Exception | None
    on_fail: Callable[[], None] | None
    # The submitter already saw the outcome (submit_acked): a failure is not counted again at flush.
    reported: bool = False


class Pipeline:
    """Outstanding submissions of one client: Kafka callbacks in, pipelined Redis records out."""

    def __init__(self, producer: Producer, store: Store) -> None:
        self.producer = producer
        self.store = store
        self._acked: queue.SimpleQueue[_Acked | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._outstanding = 0
        self._failed = 0  # since the last flush
        self._first_failure: TaskqError | None = None
        # Acknowledged or in flight, record not written yet: the client's reads wait for these.
        self._unrecorded: dict[str, Submission] = {}
        self._thread = threading.Thread(target=self._record_loop, name="taskq-recorder", daemon=True)
        self._thread.start()

    def submit(self, message: TaskMessage, *, key: str | None,
               on_fail: Callable[[], None] | None = None) -> Submission:
        sub = Submission(message.id)
        # The report runs on the Kafka client's thread: only enqueue there.
        self._send(sub, message, key, lambda err: self._acked.put(_Acked(sub, message, err, on_fail)))
        return sub

    def submit_acked(self, message: TaskMessage, *, key: str | None, timeout: float) -> None:
        """Return once Kafka acknowledged ``message`` (raise if it refused); the recorder writes its record.

        On a refusal nothing is left to undo here: the caller releases what it reserved."""
        sub = Submission(message.id)
        acked = threading.Event()
        outcome: list[Exception | None] = []

        def on_delivery(err: Exception | None) -> None:
            outcome.append(err)
            acked.set()
            self._acked.put(_Acked(sub, message, err, None, reported=True))

        self._send(sub, message, key, on_delivery)
        # message.timeout.ms bounds every report, so this wait ends; the margin covers scheduling.
        if not acked.wait(timeout + 2.0):
            raise BrokerUnavailable(f"Kafka did not acknowledge task {message.id} within {timeout:g}s")
        if outcome[0] is not None:
            raise outcome[0]

    def _send(self, sub: Submission, message: TaskMessage, key: str | None,
              on_delivery: Callable[[Exception | None], None]) -> None:
        with self._cond:
            self._outstanding += 1
            self._unrecorded[sub.id] = sub
        try:
            self.producer.send_nowait(message, key=key, on_delivery=on_delivery)
        except BaseException:
            with self._cond:
                self._outstanding -= 1
                self._unrecorded.pop(sub.id, None)
                self._cond.notify_all()
            raise

    def wait_recorded(self, task_id: str, timeout: float) -> None:
        """Wait (at most ``timeout``) until this client's submission of ``task_id`` is recorded or failed."""
        with self._cond:
            sub = self._unrecorded.get(task_id)
        if sub is not None:
            sub._done.wait(timeout)

    def flush(self, timeout: float) -> None:
        """Wait until every submission so far is acknowledged and recorded; raise if any failed."""
        deadline = time.monotonic() + timeout
        self.producer.flush(timeout)
        with self._cond:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SubmitFailed(f"{self._outstanding} submission(s) still unacknowledged after {timeout:g}s")
                self._cond.wait(left)
            failed, first = self._failed, self._first_failure
            self._failed, self._first_failure = 0, None
        if failed:
            raise SubmitFailed(f"{failed} submission(s) failed and were not recorded; the first: {first}")

    def close(self, timeout: float) -> None:
        try:
            self.flush(timeout)
        finally:
            self._acked.put(None)
            self._thread.join(timeout=timeout)

    def _record_loop(self) -> None:
        while True:
            first = self._acked.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < RECORD_BATCH:
                try:
                    nxt = self._acked.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._acked.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            try:
                self._record(batch)
            except Exception:  # a bug here must not end the thread: every later wait would hang
                log.exception("recording %d acknowledged task(s) failed unexpectedly", len(batch))
                for a in batch:
                    with contextlib.suppress(Exception):
                        a.submission._finish(None if a.error is None else
                                             SubmitFailed(f"Kafka refused task {a.message.id}: {a.error}"))

    def _record(self, batch: list[_Acked]) -> None:
        ok = [a for a in batch if a.error is None]
        failed = [a for a in batch if a.error is not None]
        if ok:
            try:
                self.store.create([a.message for a in ok])
            except TaskqError as exc:
                # Kafka has them: the worker that runs them creates the record (see Store.start_many).
                log.warning("could not record %d acknowledged task(s) in Redis yet: %s", len(ok), exc)
        errors: list[TaskqError] = []
        for a in failed:
            err = SubmitFailed(f"Kafka refused task {a.message.id}: {a.error}")
            errors.append(err)
            if a.reported:
                continue
            if a.on_fail is not None:
                try:
                    a.on_fail()
                except TaskqError as exc:
                    log.warning("cleanup after a failed submission of %s failed: %s", a.message.id, exc)
        for a in ok:
            a.submission._finish(None)
        for a, error in zip(failed, errors, strict=True):
            a.submission._finish(error)
        counted = [e for a, e in zip(failed, errors, strict=True) if not a.reported]
        with self._cond:
            self._outstanding -= len(batch)
            for a in batch:
                if self._unrecorded.get(a.message.id) is a.submission:
                    del self._unrecorded[a.message.id]
            self._failed += len(counted)
            if counted and self._first_failure is None:
                self._first_failure = counted[0]
            self._cond.notify_all()
