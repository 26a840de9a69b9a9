"""Tasks of ``make bench-flow`` (bench/flow.py)."""

from __future__ import annotations

import time

from taskq import task


@task(rate_limit="50/s")
def limited50() -> None:
    return None


@task
def unlimited() -> None:
    return None


@task
def sleepy(seconds: float) -> None:
    time.sleep(seconds)
