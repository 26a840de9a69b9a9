"""Tasks that take their process down, for the poison-task tests (``--tasks tests.poison_tasks``)."""

from __future__ import annotations

import os
import signal

from taskq import task


@task
def exits(code: int = 1) -> None:
    """Ends its process at once, as a crash in a C extension or a stray ``os._exit`` does."""
    os._exit(code)


@task(max_lost_runs=1)
def kills_its_process_group() -> None:
    """SIGKILLs every process of its group: the worker too, even from a child process."""
    os.killpg(os.getpgid(0), signal.SIGKILL)


@task(memory_limit="64MiB")
def hog(megabytes: int) -> int:
    """Takes ``megabytes`` of memory: past its limit it fails with MemoryError."""
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)
