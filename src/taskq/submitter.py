"""Pipelined submission: hand a task to Kafka and return at once; record it when Kafka acks.

``Client.submit`` waits for Kafka's acknowledgement on every call (one round trip: 1-2 ms with
kafka-python, well under 1 ms with librdkafka). ``Client.submit_nowait`` returns a :class:`Submission` immediately: the
producer batches messages, and a recorder thread writes the Redis records of acknowledged
messages in pipelines. The contract of docs/architecture.md still holds: a task is visible as ``queued``
only after Kafka acknowledged it, and a message Kafka refused leaves nothing behind.
``Client.flush()`` waits for every outstanding submission and raises if any failed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import SubmitFailed, TaskqError
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
        self._thread = threading.Thread(target=self._record_loop, name="taskq-recorder", daemon=True)
        self._thread.start()

    def submit(self, message: TaskMessage, *, key: str | None,
               on_fail: Callable[[], None] | None = None) -> Submission:
        sub = Submission(message.id)
        with self._cond:
            self._outstanding += 1
        try:
            # The report runs on the Kafka client's thread: only enqueue there.
            self.producer.send_nowait(message, key=key,
                                      on_delivery=lambda err: self._acked.put(_Acked(sub, message, err, on_fail)))
        except BaseException:
            with self._cond:
                self._outstanding -= 1
                self._cond.notify_all()
            raise
        return sub

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
            self._record(batch)

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
            if a.on_fail is not None:
                try:
                    a.on_fail()
                except TaskqError as exc:
                    log.warning("cleanup after a failed submission of %s failed: %s", a.message.id, exc)
        for a in ok:
            a.submission._finish(None)
        for a, error in zip(failed, errors, strict=True):
            a.submission._finish(error)
        with self._cond:
            self._outstanding -= len(batch)
            self._failed += len(errors)
            if errors and self._first_failure is None:
                self._first_failure = errors[0]
            self._cond.notify_all()
