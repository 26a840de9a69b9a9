"""``taskq top``: a live terminal view of throughput, lag, workers and the last failures."""

from __future__ import annotations

import time

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .client import Client
from .models import TaskState

STATUS_COLORS = {"alive": "green", "lost": "red", "stopped": "yellow", "queued": "white", "running": "blue",
                 "retrying": "yellow", "success": "green", "failed": "red", "dead": "red", "cancelled": "dim"}


def frame(client: Client) -> Group:
    """One screen of ``taskq top``, read fresh from Redis and Kafka (one admin connection, reused)."""
    stats = client.stats(lag_max_age=0.0)
    counts, tput = stats.counts, stats.throughput
    lag_text = f"lag {stats.lag_total}" if stats.lag_total is not None else "lag: Kafka unreachable"
    head = Text()
    for state in TaskState:
        head.append(f"{state.value} ", style=STATUS_COLORS[state.value])
        head.append(f"{counts[state.value]}   ", style="bold")
    head.append(f"\n{sum(tput.values()):.1f} tasks/s over the last minute "
                f"({', '.join(f'{k} {v:.1f}' for k, v in tput.items()) or 'idle'})   {lag_text}")

    workers = Table(box=None, header_style="bold", expand=True)
    for col in ("WORKER", "STATUS", "HEARTBEAT", "RUNNING", "PROCESSED", "FAILED", "PARTITIONS"):
        workers.add_column(col)
    now = time.time()
    for w in client.workers():
        workers.add_row(
            w.id, Text(w.status, style=STATUS_COLORS[w.status]),
            f"{now - w.last_heartbeat:.1f}s" if w.last_heartbeat else "-",
            f"{w.current_tasks}/{w.concurrency}", str(w.processed), str(w.failed),
            ",".join(map(str, w.partitions)) or "-",
        )

    failures = Table(box=None, header_style="bold", expand=True)
    for col in ("WHEN", "TASK", "STATUS", "ERROR", "ID"):
        failures.add_column(col, overflow="ellipsis", no_wrap=True)
    recent = (client.list_tasks(status=TaskState.FAILED, limit=5).items
              + client.list_tasks(status=TaskState.DEAD, limit=5).items)
    recent.sort(key=lambda r: r.finished_at or 0, reverse=True)
    for r in recent[:5]:
        when = time.strftime("%H:%M:%S", time.localtime(r.finished_at)) if r.finished_at else "-"
        failures.add_row(when, r.task, Text(r.status.value, style="red"), r.error or "", r.id)
    return Group(Panel(head, title="taskq"), Panel(workers, title="workers"),
                 Panel(failures, title="last failures"))
