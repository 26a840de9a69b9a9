"""Tasks the reliability tests run in real worker processes (``--tasks tests.sample_tasks``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from taskq import Retry, task


@task(max_retries=5, retry_backoff=0.2)
def flaky(marker: str, failures: int) -> str:
    """Fail the first ``failures`` runs (counted in a file, so across processes), then succeed."""
    path = Path(marker)
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    if runs < failures:
        raise RuntimeError(f"flaky failure {runs + 1} of {failures}")
    return f"ok after {runs + 1} runs"


@task(max_retries=3)
def later(marker: str, delay: float) -> str:
    """Ask for one retry after ``delay`` seconds, then succeed."""
    path = Path(marker)
    if not path.exists():
        path.write_text("1")
        raise Retry(delay=delay, reason="not yet")
    return "done"


@task
def spin() -> None:
    """Never returns by itself: only a hard time limit stops it."""
    while True:
        pass


@task
def big_result(n: int) -> str:
    return "x" * n


@task
def collect(results: list, marker: str, seconds: float = 0.0) -> list:  # type: ignore[type-arg]
    """A chord callback that counts its completed runs: one line per run in ``marker``, written last."""
    time.sleep(seconds)
    with open(marker, "a") as fh:
        fh.write(json.dumps(results) + "\n")
    return results
