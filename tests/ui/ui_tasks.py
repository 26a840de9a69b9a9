"""Tasks with typed signatures for the form tests (a worker loads them with --tasks tests.ui.ui_tasks)."""

from __future__ import annotations

from typing import Any, Literal

from taskq import task
from taskq.errors import Retry


@task
def typed(n: int, x: float, flag: bool, items: list[int], opts: dict[str, Any], label: str = "none",
          *, mode: Literal["fast", "slow"] = "fast", scale: float | None = None, **extra: Any) -> dict[str, Any]:
    """Echo every argument with its Python type."""
    values = {"n": n, "x": x, "flag": flag, "items": items, "opts": opts, "label": label, "mode": mode,
              "scale": scale, "extra": extra}
    return {k: [v, type(v).__name__] for k, v in values.items()}


@task
def pos_only(a: int, b: int = 2, /, c: int = 3) -> list[int]:
    return [a, b, c]


@task(max_retries=3)
def retry_later(seconds: float) -> None:
    """Ask for another attempt ``seconds`` later, every time."""
    raise Retry(delay=seconds, reason="not ready yet")
