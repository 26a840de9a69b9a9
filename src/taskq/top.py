"""``taskq top``: a live terminal view of throughput, lag, workers and the last failures.

It fits 80 columns and never shortens a task id (ids are for copying into ``taskq status``); ``q``
quits, and so does Ctrl-C.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .client import Client
from .models import TaskState

STATUS_COLORS = {"alive": "green", "lost": "red", "stopped": "yellow", "queued": "white", "running": "blue",
                 "retrying": "yellow", "success": "green", "failed": "red", "dead": "red", "cancelled": "dim"}
ID_WIDTH = 32  # a task id as taskq makes them (uuid4 hex); longer ones widen the column


def frame(client: Client, *, hint: bool = False) -> Group:
    """One screen of ``taskq top``, read fresh from Redis and Kafka (one admin connection, reused)."""
    stats = client.stats(lag_max_age=0.0)
    counts, tput = stats.counts, stats.throughput
    lag_text = f"lag {stats.lag_total}" if stats.lag_total is not None else "lag: Kafka unreachable"
    head = Text()
    for state in TaskState:
        head.append(f"{state.value} ", style=STATUS_COLORS[state.value])
        head.append(f"{counts[state.value]}  ", style="bold")
    head.append(f"\n{sum(tput.values()):.1f} tasks/s over the last minute "
                f"({', '.join(f'{k} {v:.1f}' for k, v in tput.items()) or 'idle'})   {lag_text}")

    infos = client.workers()
    workers = Table(box=None, header_style="bold", expand=True, pad_edge=False)
    # Short headers leave 80 columns room for a whole pod name; the partition list gives way first.
    workers.add_column("WORKER", no_wrap=True, min_width=min(40, max([6, *(len(w.id) for w in infos)])))
    for col in ("STATUS", "HB", "RUN", "DONE", "FAIL"):
        workers.add_column(col, no_wrap=True)
    workers.add_column("PARTITIONS", no_wrap=True, overflow="ellipsis", ratio=1)
    now = time.time()
    for w in infos:
        workers.add_row(
            w.id, Text(w.status, style=STATUS_COLORS[w.status]),
            f"{now - w.last_heartbeat:.1f}s" if w.last_heartbeat else "-",
            f"{w.current_tasks}/{w.concurrency}", str(w.processed), str(w.failed),
            ",".join(map(str, w.partitions)) or "-",
        )

    recent = (client.list_tasks(status=TaskState.FAILED, limit=5, count=False).items
              + client.list_tasks(status=TaskState.DEAD, limit=5, count=False).items)
    recent.sort(key=lambda r: r.finished_at or 0, reverse=True)
    # One failure is two lines: the whole id first (never shortened), then its error, each cut with
    # an ellipsis at the panel's width rather than wrapped.
    width = max([ID_WIDTH, *(len(r.id) for r in recent[:5])])
    lines: list[Text] = [Text(f"{'ID':<{width}}  {'WHEN':<8}  {'STATUS':<9} TASK / ERROR", style="bold",
                              no_wrap=True, overflow="ellipsis")]
    for r in recent[:5]:
        when = time.strftime("%H:%M:%S", time.localtime(r.finished_at)) if r.finished_at else "-"
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{r.id:<{width}}  {when:<8}  ")
        line.append(f"{r.status.value:<9}", style="red")
        line.append(f" {r.task}")
        lines.append(line)
        error = (r.error or "").splitlines()[0] if r.error else "-"
        lines.append(Text(f"  {error}", style="dim", no_wrap=True, overflow="ellipsis"))
    failures = Group(*lines)
    parts: list[Panel | Text] = [Panel(head, title="taskq"), Panel(workers, title="workers"),
                                 Panel(failures, title="last failures")]
    if hint:
        parts.append(Text("q quits", style="dim"))
    return Group(*parts)


CTRL_C = "\x03"


class Keys:
    """Single key presses from a terminal's stdin (cbreak mode: no Enter needed); without a
    terminal, ``wait`` only waits.

    Ctrl-C arrives as a key, not as SIGINT: a KeyboardInterrupt raised inside a Redis or Kafka call
    can leave a client lock held, and closing that client then hangs. Read as a key, it quits
    between two refreshes like ``q``.
    """

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        self._saved: list[Any] | None = None

    def __enter__(self) -> Keys:
        if self.fd is not None:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[6][termios.VINTR] = bytes([os.fpathconf(self.fd, "PC_VDISABLE")])  # Ctrl-Z still suspends
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None and self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def wait(self, timeout: float) -> str:
        """The keys pressed within ``timeout`` seconds (returns at the first press), or ''."""
        if self.fd is None:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 64).decode(errors="ignore") if ready else ""


def run(client: Client, *, interval: float, console: Console | None = None) -> None:
    """Refresh the view every ``interval`` seconds until ``q`` (or Ctrl-C) is pressed."""
    try:
        with Keys() as keys, Live(frame(client, hint=True), console=console, refresh_per_second=4,
                                  screen=False) as live:
            while True:
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    pressed = keys.wait(left).lower()
                    if "q" in pressed or CTRL_C in pressed:
                        return
                live.update(frame(client, hint=True))
    except KeyboardInterrupt:
        return
