"""What a running task knows about itself: ``taskq.current()`` and ``taskq.progress()``.

The worker sets a ``TaskContext`` in a context variable around each run, so it is right for a
task thread, an ``async def`` task on the worker's event loop and a time-limited task's child
process alike. Progress goes to the task's record (only while this run owns it) and to the event
stream; cancellation is read from the record (``Client.cancel`` of a running task sets it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from .errors import InvalidTask, NotInTask, TaskqError

# A task reporting in a tight loop writes at most this often (the latest value wins).
PROGRESS_INTERVAL = 0.2
# ``is_cancelled()`` asks Redis at most this often.
CANCEL_CHECK_INTERVAL = 0.5
MESSAGE_MAX = 500


class ContextBackend(Protocol):
    """Where a context reports to: the worker's ``Store`` (``store.progress`` / ``cancel_requested``)."""

    def progress(self, task_id: str, *, lease: str, value: float | None, message: str | None) -> tuple[bool, bool]: ...

    def cancel_requested(self, task_id: str) -> bool: ...


@dataclass(slots=True)
class TaskContext:
    """The running task: its id, name, attempt (1 for the first run), worker and priority."""

    id: str
    task: str
    attempt: int
    worker: str
    lease: str
    priority: str = "normal"
    backend: ContextBackend | None = None
    _last_write: float = field(default=-math.inf, repr=False)
    _cancel: tuple[bool, float] = field(default=(False, -math.inf), repr=False)

    def progress(self, value: float | None = None, message: str | None = None) -> None:
        """Report progress: ``value`` from 0 to 1 and/or a short message; shown in the UI, the API and SSE.

        Writes are spaced at least ``PROGRESS_INTERVAL`` apart; a report in between is dropped
        unless it completes the work (value 1). A Redis outage never fails the task."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0 <= value <= 1):
            raise InvalidTask(f"progress must be a number from 0 to 1, got {value!r}")
        if message is not None and (not isinstance(message, str) or len(message) > MESSAGE_MAX):
            raise InvalidTask(f"a progress message must be a string of at most {MESSAGE_MAX} characters")
        now = time.monotonic()
        if self.backend is None or (now - self._last_write < PROGRESS_INTERVAL and value != 1):
            return
        self._last_write = now
        try:
            _, cancelled = self.backend.progress(self.id, lease=self.lease,
                                                 value=float(value) if value is not None else None, message=message)
            self._cancel = (cancelled, now)
        except TaskqError:
            pass  # progress is advisory: the run goes on, its outcome is what counts

    def is_cancelled(self) -> bool:
        """Whether someone cancelled this task while it runs; stop early then (``raise taskq.Cancelled``)."""
        cancelled, at = self._cancel
        now = time.monotonic()
        if cancelled or self.backend is None or now - at < CANCEL_CHECK_INTERVAL:
            return cancelled
        try:
            cancelled = self.backend.cancel_requested(self.id)
        except TaskqError:
            return False
        self._cancel = (cancelled, now)
        return cancelled


_current: ContextVar[TaskContext | None] = ContextVar("taskq_current_task", default=None)


def current() -> TaskContext:
    """The running task's context; raises ``NotInTask`` outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise NotInTask("taskq.current() is only available inside a running task")
    return ctx


def progress(value: float | None = None, message: str | None = None) -> None:
    """``taskq.current().progress(value, message)``."""
    current().progress(value, message)


@contextmanager
def running(ctx: TaskContext) -> Iterator[TaskContext]:
    """Make ``ctx`` the current task for the block (the worker wraps each run in it)."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
