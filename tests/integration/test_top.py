"""``taskq top``: whole task ids within 80 columns; ``q`` quits, and so does Ctrl-C, on a real terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from taskq.models import TaskMessage, TaskState
from taskq.settings import Settings
from taskq.store import Finish, Store
from tests.helpers import settings_env

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _failures(store: Store) -> list[str]:
    msgs = [TaskMessage(id=f"{i}" * 32, task=f"a.rather.long.task.name.{i}", args=[i]) for i in range(1, 4)]
    store.create(msgs)
    store.start_many(msgs, worker="a-worker-with-a-long-host-name-12345", lease="L")
    store.finish_many([Finish(m.id, 1, TaskState.DEAD if i else TaskState.FAILED,
                              error="RuntimeError: " + "a very long error message " * 6) for i, m in enumerate(msgs)],
                      worker="a-worker-with-a-long-host-name-12345", lease="L")
    store.heartbeat("a-worker-with-a-long-host-name-12345", lease="L", partitions=list(range(12)), current_tasks=3,
                    concurrency=16, tasks={}, started_at=time.time(), first=True)
    return [m.id for m in msgs]


def test_top_fits_80_columns_and_shows_whole_task_ids(settings: Settings, store: Store) -> None:
    ids = _failures(store)
    env = {**settings_env(settings), "COLUMNS": "80"}
    res = subprocess.run([sys.executable, "-m", "taskq", "top", "--once"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    for tid in ids:
        assert tid in res.stdout
    assert "dead 2" in res.stdout and "failed 1" in res.stdout and "RuntimeError: a very long" in res.stdout
    assert "a-worker-with-a-long-host-name-12345" in res.stdout and "3/16" in res.stdout


def _on_a_terminal(settings: Settings) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # so Ctrl-C on it interrupts this process

    proc = subprocess.Popen([sys.executable, "-m", "taskq", "top", "--interval", "0.3"], env=settings_env(settings),
                            stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_terminal)
    os.close(slave)
    return proc, master


def _read_until(master: int, proc: subprocess.Popen[bytes], want: str, timeout: float = 30) -> str:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and want not in ANSI.sub("", out.decode(errors="replace")):
        if proc.poll() is not None:
            break
        if select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    return ANSI.sub("", out.decode(errors="replace"))


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_quits_on_q_and_on_ctrl_c(settings: Settings, store: Store, key: bytes) -> None:
    ids = _failures(store)
    proc, master = _on_a_terminal(settings)
    try:
        screen = _read_until(master, proc, "q quits")
        assert "q quits" in screen and ids[0] in screen, screen
        os.write(master, key)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
