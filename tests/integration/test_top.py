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
from pathlib import Path

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
    # Alive for the whole test: with the 3 s TTL of the test settings, a busy machine starting
    # 'taskq top' let the heartbeat expire first and the worker was missing from the frame.
    lasting = Store(store.settings.model_copy(update={"heartbeat_ttl": 600.0}))
    try:
        lasting.heartbeat("a-worker-with-a-long-host-name-12345", lease="L", partitions=list(range(12)),
                          current_tasks=3, concurrency=16, tasks={}, started_at=time.time(), first=True)
    finally:
        lasting.close()
    return [m.id for m in msgs]


@pytest.mark.parametrize("columns", ["80", None])
def test_top_once_prints_the_whole_frame_into_a_file_within_80_columns(
    settings: Settings, store: Store, tmp_path: Path, columns: str | None
) -> None:
    """As a cron job or CI step runs it: no terminal, stdin from /dev/null, no TERM or LINES, stdout
    a file; DEBUG logging on, so any log line that reached stdout would break the frame."""
    ids = _failures(store)
    env = {k: v for k, v in settings_env(settings).items() if k not in ("TERM", "LINES", "COLUMNS")}
    env |= {"CI": "true", "TASKQ_LOG_LEVEL": "DEBUG"} | ({"COLUMNS": columns} if columns else {})
    out, err = tmp_path / "status.txt", tmp_path / "stderr.txt"
    with out.open("w") as fo, err.open("w") as fe:
        res = subprocess.run([sys.executable, "-m", "taskq", "top", "--once"], env=env, stdin=subprocess.DEVNULL,
                             stdout=fo, stderr=fe, timeout=60, start_new_session=True)
    text = out.read_text()
    assert res.returncode == 0, err.read_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert all(line[:1] in "╭│╰" for line in lines), text  # the frame only: logs go to stderr
    assert sum(line.startswith("╭") for line in lines) == 3  # the three panels, whole
    for tid in ids:
        assert tid in text
    assert "dead 2" in text and "failed 1" in text and "RuntimeError: a very long" in text
    assert "a-worker-with-a-long-host-name-12345" in text and "3/16" in text


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
