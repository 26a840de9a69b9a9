"""Run one task function and classify the outcome."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import Retry, UnknownTask
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


def _bad_arguments(defn: TaskDefinition, exc: TypeError) -> bool:
    """A TypeError raised by the call itself (wrong arity/keywords), not from inside the task."""
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None


def run_task(registry: Registry, msg: TaskMessage) -> Outcome:
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
        return Outcome(False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    try:
        orjson.dumps(result)
    except TypeError as exc:
        return Outcome(False, error=f"result is not JSON serializable: {exc}", retryable=False)
    return Outcome(True, result=result)
