"""Run one task function and classify the outcome."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson

from ..arguments import argument_problem
from ..context import TaskContext, running
from ..errors import Cancelled, Retry, TaskTimeout, UnknownTask
from ..models import TaskMessage
from ..registry import Registry, TaskDefinition
from ..settings import Settings


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True  # False for errors no retry can fix (unknown task, bad arguments)
    retry_delay: float | None = None
    traceback: str | None = None
    cancelled: bool = False  # the task stopped itself by raising taskq.Cancelled


def error_text(exc: BaseException) -> str:
    """How a task's error reads in its record: ``ValueError: ...``."""
    return f"{type(exc).__name__}: {exc}"


def _bad_arguments(defn: TaskDefinition, exc: TypeError) -> bool:
    """A TypeError raised by the call itself (wrong arity/keywords), not from inside the task."""
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None


def _raised(defn: TaskDefinition, exc: BaseException) -> Outcome:
    """The outcome of a task that raised ``exc`` (called inside its ``except``, for the traceback)."""
    if isinstance(exc, Retry):
        return Outcome(False, error=f"Retry: {exc}", retry_delay=exc.delay, traceback=traceback.format_exc())
    if isinstance(exc, Cancelled):
        return Outcome(False, error=f"cancelled: {exc}" if str(exc) != "cancelled" else "cancelled",
                       retryable=False, cancelled=True)
    if isinstance(exc, TypeError):
        if _bad_arguments(defn, exc):
            return Outcome(False, error=f"TypeError: {exc}", retryable=False)
        return Outcome(False, error=f"TypeError: {exc}", traceback=traceback.format_exc())
    return Outcome(False, error=error_text(exc), traceback=traceback.format_exc())


def run_task(registry: Registry, msg: TaskMessage, *, max_result_bytes: int | None = None,
             ctx: TaskContext | None = None) -> Outcome:
    try:
        defn = registry.get(msg.task)
    except UnknownTask as exc:
        return Outcome(False, error=str(exc), retryable=False)
    if why := argument_problem(defn.fn, msg.args, msg.kwargs):
        return Outcome(False, error=f"TypeError: {why}", retryable=False)
    if defn.is_async:
        # Outside the worker's event loop (a time-limited child process): a loop of its own.
        return asyncio.run(run_task_async(registry, msg, timeout=None, max_result_bytes=max_result_bytes, ctx=ctx))
    try:
        if ctx is None:
            result = defn.fn(*msg.args, **msg.kwargs)
        else:
            with running(ctx):
                result = defn.fn(*msg.args, **msg.kwargs)
    except (Retry, Cancelled, Exception) as exc:  # noqa: BLE001 - a task's failure is data, not our crash
        return _raised(defn, exc)
    return _result(result, max_result_bytes)


async def run_task_async(registry: Registry, msg: TaskMessage, *, timeout: float | None,
                         max_result_bytes: int | None = None, ctx: TaskContext | None = None) -> Outcome:
    """Run an ``async def`` task on the current event loop; its time limit cancels it."""
    try:
        defn = registry.get(msg.task)
    except UnknownTask as exc:
        return Outcome(False, error=str(exc), retryable=False)
    if why := argument_problem(defn.fn, msg.args, msg.kwargs):
        return Outcome(False, error=f"TypeError: {why}", retryable=False)
    t0 = time.monotonic()
    try:
        coro = defn.fn(*msg.args, **msg.kwargs)
        result = await asyncio.wait_for(_in_context(coro, ctx), timeout) if timeout else await _in_context(coro, ctx)
    except TimeoutError as exc:
        if timeout and time.monotonic() - t0 >= timeout:
            return Outcome(False, error=error_text(TaskTimeout(timeout)))
        return _raised(defn, exc)  # the task's own TimeoutError (a socket, say), not its time limit
    except (Retry, Cancelled, Exception) as exc:  # noqa: BLE001 - a task's failure is data, not our crash
        return _raised(defn, exc)
    return _result(result, max_result_bytes)


async def _in_context(coro: Any, ctx: TaskContext | None) -> Any:
    """Await ``coro`` with ``ctx`` current (a context variable set inside the awaiting task)."""
    if ctx is None:
        return await coro
    with running(ctx):
        return await coro


def _result(result: Any, max_result_bytes: int | None) -> Outcome:
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


def _child(modules: tuple[str, ...], msg: TaskMessage, max_result_bytes: int | None, conn: Connection,
           ctx: TaskContext | None = None, settings: Settings | None = None, memory_limit: int | None = None) -> None:
    if memory_limit is not None:
        # The heap (and private mappings) this child may take: past it allocations fail with
        # MemoryError inside the task, instead of the kernel's OOM killer taking a process.
        resource.setrlimit(resource.RLIMIT_DATA, (memory_limit, memory_limit))
    reg = _registries.get(modules)
    if reg is None:
        reg = _registries[modules] = Registry.load([m for m in modules if m != "taskq.builtins"],
                                                   builtins="taskq.builtins" in modules)
    store = None
    if ctx is not None and settings is not None:
        from ..store import Store  # the child reports progress through a connection of its own

        store = ctx.backend = Store(settings)
    try:
        conn.send(run_task(reg, msg, max_result_bytes=max_result_bytes, ctx=ctx))
    finally:
        conn.close()
        if store is not None:
            store.close()


def _died(exitcode: int | None, memory_limit: int | None) -> str:
    """Why a task's child process ended without an answer, as its record says it."""
    how = f"was killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exited ({exitcode})"
    hint = f"; its memory limit is {memory_limit} bytes" if memory_limit is not None else ""
    return f"the task process {how} before it returned{hint}"


class IsolatedRunner:
    """Runs tasks that have a time limit in killable child processes."""

    def __init__(self, registry: Registry) -> None:
        self.modules = tuple(registry.modules)
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["taskq.worker.execute", *self.modules])

    def run(self, msg: TaskMessage, *, timeout: float, max_result_bytes: int | None = None,
            ctx: TaskContext | None = None, settings: Settings | None = None,
            memory_limit: int | None = None) -> Outcome:
        parent, child = self._ctx.Pipe(duplex=False)
        if ctx is not None:
            ctx = TaskContext(ctx.id, ctx.task, ctx.attempt, ctx.worker, ctx.lease, ctx.priority)  # no backend: pickled
        proc = self._ctx.Process(target=_child, daemon=True,
                                 args=(self.modules, msg, max_result_bytes, child, ctx, settings, memory_limit))
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
                return Outcome(False, error=_died(proc.exitcode, memory_limit))
            proc.kill()
            return Outcome(False, error=error_text(TaskTimeout(timeout)))
        finally:
            proc.join(timeout=5)
            parent.close()
