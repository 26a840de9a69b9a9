"""Built-in tasks: the seed's arithmetic plus a few for demos and tests."""

from __future__ import annotations

import time
from typing import Any

from .registry import task


@task
def add(a: float, b: float) -> float:
    return a + b


@task
def sub(a: float, b: float) -> float:
    return a - b


@task
def multiply(a: float, b: float) -> float:
    return a * b


@task
def sleep(seconds: float) -> float:
    """Sleep for ``seconds`` and return them (simulates slow work)."""
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    time.sleep(seconds)
    return seconds


@task
def fail(message: str = "failed on purpose") -> None:
    """Always raise ``RuntimeError(message)``."""
    raise RuntimeError(message)


@task
def echo(*args: Any) -> list[Any]:
    return list(args)
