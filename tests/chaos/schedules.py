"""The chaos run's periodic schedules: three one-second schedules tick for the whole run, through
the kills and the Kafka and Redis restarts; at the end every tick is accounted for exactly once.

A tick is either enqueued (its task, whose id comes from the tick, exists and succeeded) or dropped
by its schedule's missed-tick policy (counted in ``dropped``); the ticks are every whole second from
the first after the schedule was made to its ``next_at`` when the run paused it, which is the run's
wall-clock window (less at most the last second, which the pause may beat to its claim).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from taskq.client import Client
from taskq.errors import TaskqError
from taskq.schedules import Schedule, tick_task_id
from taskq.store import Store

# (name, missed policy, catchup): each policy once.
POLICIES = [("chaos-skip", "skip", 0), ("chaos-catchup-2", "catchup", 2), ("chaos-catchup-20", "catchup", 20)]
BASE = 1000  # each schedule adds its index to this, so a run's result names its schedule


@dataclass
class ScheduleReport:
    ticks: int = 0
    enqueued: int = 0
    dropped: int = 0
    window: int = 0  # whole seconds of wall clock between creating and pausing the schedules
    wrong: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.wrong and self.ticks > 0

    def render(self) -> str:
        return (f"schedule ticks           {self.ticks} over 3 schedules (wall clock {self.window} s each): "
                f"{self.enqueued} enqueued once, {self.dropped} dropped by policy"
                + (f", WRONG {self.wrong[:5]}" if self.wrong else ""))


class ScheduleProbe:
    def __init__(self) -> None:
        self.started = 0.0
        self.stopped = 0.0
        self.report = ScheduleReport()

    def start(self, client: Client) -> None:
        self.started = time.time()
        for i, (name, missed, catchup) in enumerate(POLICIES):
            client.add_schedule(name, "add", args=[i, BASE], every=1, missed=missed, catchup=catchup)

    def stop(self, client: Client) -> None:
        deadline = time.monotonic() + 60
        while True:  # Redis may be restarting
            try:
                for name, _, _ in POLICIES:
                    client.pause_schedule(name)
                break
            except TaskqError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.stopped = time.time()

    def check(self, store: Store, *, timeout: float) -> None:
        rep = self.report
        rep.window = int(self.stopped) - int(self.started)
        for i, (name, _, _) in enumerate(POLICIES):
            h: dict[str, Any] = store.r.hgetall(f"{store.prefix}sched:{name}")
            first = Schedule("x", "add", every=1).next_after(round(float(h["created_at"]) * 1000))
            ticks = list(range(first, int(h["next_at"]), 1000))
            if not rep.window - 1 <= len(ticks) <= rep.window:
                rep.wrong.append(f"{name}: {len(ticks)} ticks in a {rep.window} s window")
            ids = [tick_task_id(name, t) for t in ticks]
            deadline = time.monotonic() + timeout
            while True:
                records = store.get_many(ids)
                if all(r is None or r.status.terminal for r in records) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            present = [r for r in records if r is not None]
            runs, dropped = int(h.get("runs") or 0), int(h.get("dropped") or 0)
            rep.ticks += len(ticks)
            rep.enqueued += len(present)
            rep.dropped += dropped
            if runs != len(present) or runs + dropped != len(ticks):
                rep.wrong.append(f"{name}: {len(ticks)} ticks, {len(present)} tasks, runs {runs}, dropped {dropped}")
            for r in present:
                if r.status.value != "success" or r.result != i + BASE:
                    rep.wrong.append(f"{name}: {r.id} {r.status.value} {r.result!r}")
