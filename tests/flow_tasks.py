"""Tasks for the flow-control, context, progress, cancellation and async tests (tests/integration/test_flow.py)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import taskq
from taskq import Cancelled, task


@task(rate_limit="20/s")
def limited(i: int) -> int:
    return i


@task
def free(i: int) -> int:
    return i


@task(concurrency=2)
def exclusive(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(key_concurrency=1)
def per_customer(customer: str, seconds: float) -> str:
    time.sleep(seconds)
    return customer


@task(key_rate_limit="10/s")
def per_customer_rate(customer: str) -> str:
    return customer


@task
def whoami() -> dict[str, object]:
    ctx = taskq.current()
    return {"id": ctx.id, "task": ctx.task, "attempt": ctx.attempt, "worker": ctx.worker}


@task
def reporting(steps: int, seconds: float) -> int:
    for i in range(1, steps + 1):
        time.sleep(seconds)
        taskq.progress(i / steps, f"step {i} of {steps}")
    return steps


@task(max_retries=3)
def until_cancelled(max_seconds: float) -> str:
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        if taskq.current().is_cancelled():
            raise Cancelled("stopped early")
        time.sleep(0.05)
    return "ran to the end"


@task(max_retries=3, timeout=60)
def until_cancelled_isolated(max_seconds: float) -> str:
    """The same in a time-limited task's child process (its own Redis connection)."""
    return until_cancelled(max_seconds)


@task
async def nap(seconds: float) -> dict[str, object]:
    await asyncio.sleep(seconds)
    return {"threads": threading.active_count(), "pid": os.getpid(), "attempt": taskq.current().attempt}


@task(timeout=0.5, max_retries=0)
async def oversleeps() -> None:
    await asyncio.sleep(30)


@task
async def async_progress() -> str:
    taskq.progress(0.5, "half")
    await asyncio.sleep(0.3)
    return taskq.current().id


@task
def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
