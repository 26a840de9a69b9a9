"""Run one task function and classify the outcome."""

from __future__ import annotations

import multiprocessing
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson

from ..errors import Retry, TaskTimeout, UnknownTask
from ..models import TaskMessage
from ..registry import Registry, TaskDefinition


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True  # False for errors no retry can fix (unknown task, bad arguments)
    retry_delay: float | None = None
    traceback: str | None = None


def error_text(exc: BaseException) -> str:
    """How a task's error reads in its record: ``ValueError: ...``."""
    return f"{type(exc).__name__}: {exc}"


def _bad_arguments(defn: TaskDefinition, exc: TypeError) -> bool:
    """A TypeError raised by the call itself (wrong arity/keywords), not from inside the task."""
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None


def run_task(registry: Registry, msg: TaskMessage, *, max_result_bytes: int | None = None) -> Outcome:
    try:
        defn = registry.get(msg.task)
    except UnknownTask as exc:
        return Outcome(False, error=str(exc), retryable=False)
    try:
        result = defn.fn(*msg.args, **msg.kwargs)
    except Retry as exc:
        return Outcome(False, error=f"Retry: {exc}", retry_delay=exc.delay, traceback=traceback.format_exc())
    except TypeError as exc:
        if _bad_arguments(defn, exc):
            return Outcome(False, error=f"TypeError: {exc}", retryable=False)
        return Outcome(False, error=f"TypeError: {exc}", traceback=traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - a task's failure is data, not our crash
        return Outcome(False, error=error_text(exc), traceback=traceback.format_exc())
    try:
        size = len(orjson.dumps(result))
    except TypeError as exc:
        return Outcome(False, error=f"result is not JSON serializable: {exc}", retryable=False)
    if max_result_bytes is not None and size > max_result_bytes:
        return Outcome(False, error=f"result is {size} bytes; the limit is {max_result_bytes} (TASKQ_MAX_RESULT_BYTES)",
                       retryable=False)
    return Outcome(True, result=result)


# --- hard time limits --------------------------------------------------------------
# A thread cannot be stopped, so a task with a time limit runs in a child process that is
# killed when the limit passes, whatever the task is doing (a C extension, an endless loop).
# Children fork from a forkserver that has already imported the task modules: a clean,
# single-threaded parent (forking our multi-threaded worker would copy held locks), and
# a few milliseconds per task instead of a fresh interpreter.

_registries: dict[tuple[str, ...], Registry] = {}


def _child(modules: tuple[str, ...], msg: TaskMessage, max_result_bytes: int | None, conn: Connection) -> None:
    reg = _registries.get(modules)
    if reg is None:
        reg = _registries[modules] = Registry.load([m for m in modules if m != "taskq.builtins"],
                                                   builtins="taskq.builtins" in modules)
    conn.send(run_task(reg, msg, max_result_bytes=max_result_bytes))
    conn.close()


class IsolatedRunner:
    """Runs tasks that have a time limit in killable child processes."""

    def __init__(self, registry: Registry) -> None:
        self.modules = tuple(registry.modules)
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["taskq.worker.execute", *self.modules])

    def run(self, msg: TaskMessage, *, timeout: float, max_result_bytes: int | None = None) -> Outcome:
        parent, child = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child, args=(self.modules, msg, max_result_bytes, child), daemon=True)
        proc.start()
        child.close()
        try:
            if parent.poll(timeout):
                try:
                    outcome: Outcome = parent.recv()
                    return outcome
                except EOFError:
                    pass  # the child died without an answer (segfault, os._exit, OOM kill)
                proc.join(timeout=5)
                return Outcome(False, error=f"the task process died (exit code {proc.exitcode})")
            proc.kill()
            return Outcome(False, error=error_text(TaskTimeout(timeout)))
        finally:
            proc.join(timeout=5)
            parent.close()
