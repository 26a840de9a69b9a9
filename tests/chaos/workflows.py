"""The chaos run's workflows: chords of 5-20 members (some failing, each failure policy) and chains
of 5 steps (some with a failing step) are started through the whole run, through the kills and the
Kafka and Redis restarts; at the end each one ended as its shape says it must.

A chord whose policy is ``fail`` and that has a failing member fails without its callback ever
starting; every other chord succeeds with its callback's result built from the members in order.
A chain succeeds with the sum of its steps, or fails at its failing step with nothing after it
started. A callback or step that ran more than once must have a lost worker in its history (a
SIGKILL mid-run): the callback fires once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskq.client import Client
from taskq.errors import TaskqError
from taskq.store import Store
from taskq.workflows import Node, Policy, chain, chord, sig


@dataclass
class WorkflowReport:
    chords: int = 0
    chains: int = 0
    ended: int = 0
    callbacks: int = 0  # chord callbacks that ran
    rerun_callbacks: int = 0  # ran again after their worker was SIGKILLed (history says lost)
    # Failed because a step ended dead when this run's SIGKILLs caught it mid-run more often than
    # max_lost_runs allows: poison containment, as for a plain task (run.py's dead_by_kills).
    dead_by_kills: int = 0
    wrong: list[str] = field(default_factory=list)

    def render(self) -> str:
        return (f"workflows                {self.chords} chords, {self.chains} chains: "
                f"{self.ended} ended as they must; {self.callbacks} callbacks fired once "
                f"({self.rerun_callbacks} re-run after a SIGKILL); {self.dead_by_kills} failed by a step "
                f"the kills made dead"
                + (f", WRONG {self.wrong[:5]}" if self.wrong else ""))


@dataclass
class _Expect:
    kind: str  # chord | chain
    status: str
    result: Any = None
    failed_node: int | None = None  # a chain's failing step
    callback: int | None = None  # a chord's callback node
    last: int = 0  # the chain's last node


class WorkflowProbe:
    def __init__(self, *, chords: int, chains: int, seed: int) -> None:
        self.n_chords, self.n_chains = chords, chains
        self.rng = random.Random(seed)
        self.expected: dict[str, _Expect] = {}
        self.report = WorkflowReport()
        self.submit_errors = 0

    def _chord(self) -> tuple[Node, _Expect]:
        n = self.rng.randint(5, 20)
        policies: list[Policy] = ["fail", "skip", "run"]
        policy = self.rng.choice(policies)
        failing = {i for i in range(n) if self.rng.random() < 0.1}
        members = [sig("fail", "chaos", _max_retries=0) if i in failing else sig("add", i, 1) for i in range(n)]
        if policy == "fail" and failing:
            return chord(members, "echo", on_failure="fail"), _Expect("chord", "failed", callback=n + 3)
        if policy == "skip":
            results: list[Any] = [i + 1 for i in range(n) if i not in failing]
        elif policy == "run":
            results = [None if i in failing else {"status": "success", "result": i + 1} for i in range(n)]
        else:
            results = [i + 1 for i in range(n)]
        return chord(members, "echo", on_failure=policy), _Expect("chord", "success", [results], callback=n + 3)

    def _chain(self) -> tuple[Node, _Expect]:
        start = self.rng.randint(0, 1000)
        bad = self.rng.randint(1, 5) if self.rng.random() < 0.2 else None
        steps = [sig("fail", "chaos", _max_retries=0, _immutable=True) if i == bad
                 else (sig("add", start, 1) if i == 1 else sig("add", 1)) for i in range(1, 6)]
        if bad is not None:
            return chain(*steps), _Expect("chain", "failed", failed_node=bad + 1, last=6)
        return chain(*steps), _Expect("chain", "success", start + 5, last=6)

    def submitter(self, client: Client, duration: float, stop: threading.Event) -> None:
        shapes = ["chord"] * self.n_chords + ["chain"] * self.n_chains
        self.rng.shuffle(shapes)
        pause = duration * 0.8 / max(1, len(shapes))
        for shape in shapes:
            wf, want = self._chord() if shape == "chord" else self._chain()
            while not stop.is_set():
                try:
                    wid = client.submit_workflow(wf)
                    break
                except TaskqError:  # Redis restarting: not stored, start it again
                    self.submit_errors += 1
                    time.sleep(0.5)
            else:
                return
            self.expected[wid] = want
            if shape == "chord":
                self.report.chords += 1
            else:
                self.report.chains += 1
            time.sleep(pause)

    def check(self, store: Store, *, timeout: float,
              killed_past_limit: Callable[[list[dict[str, Any]]], bool] = lambda _: False) -> None:
        """Every workflow ended as it must; ``killed_past_limit`` tells a step's run history that
        this run's SIGKILLs ended dead (poison containment), which fails its workflow rightly."""
        rep = self.report
        deadline = time.monotonic() + timeout
        recs: dict[str, Any] = {}
        while True:
            try:
                recs = {wid: store.workflow(wid) for wid in self.expected}
            except TaskqError:
                recs = {}
            if (recs and all(r.done for r in recs.values())) or time.monotonic() > deadline:
                break
            time.sleep(1)
        for wid, want in self.expected.items():
            rec = recs.get(wid)
            if rec is None or not rec.done:
                rep.wrong.append(f"{wid} {want.kind} not ended ({rec.status if rec else 'unreadable'})")
                continue
            if rec.status != want.status:
                step = store.get_many([rec.failed_task_id])[0] if rec.failed_task_id else None
                if (rec.status == "failed" and step is not None and step.status == "dead"
                        and killed_past_limit(list(step.history))):
                    rep.dead_by_kills += 1
                    continue
                rep.wrong.append(f"{wid} {want.kind} {rec.status}, expected {want.status}: {rec.error}")
                continue
            if want.kind == "chord":
                cb = rec.nodes[(want.callback or 0) - 1]
                if want.status == "failed":
                    if cb.state is not None:
                        rep.wrong.append(f"{wid} chord failed but its callback is {cb.state}")
                else:
                    got = rec.result
                    if want.result is not None and got is not None and any(x is None for x in want.result[0]):
                        # "run": a failed member's outcome carries its error text; compare the status only.
                        got = [[None if isinstance(o, dict) and o.get("status") != "success" else o for o in got[0]]]
                    if got != want.result:
                        rep.wrong.append(f"{wid} chord result {str(rec.result)[:80]} != {str(want.result)[:80]}")
                    rep.callbacks += 1
                    task = store.get_many([cb.task_id or ""])[0]
                    if task is None or task.attempts < 1:
                        rep.wrong.append(f"{wid} callback record missing")
                    elif task.attempts > 1:
                        if any(h.get("outcome") == "lost" for h in task.history):
                            rep.rerun_callbacks += 1
                        else:
                            rep.wrong.append(f"{wid} callback ran {task.attempts} times with no lost worker")
            elif want.status == "failed":
                if rec.failed_task_id != f"{wid}-{want.failed_node}":
                    rep.wrong.append(f"{wid} chain failed at {rec.failed_task_id}, expected node {want.failed_node}")
                after = [n for n in rec.nodes[(want.failed_node or 0):] if n.state is not None]
                if after:
                    rep.wrong.append(f"{wid} chain started {len(after)} step(s) after its failed one")
            elif rec.result != want.result:
                rep.wrong.append(f"{wid} chain result {rec.result} != {want.result}")
            rep.ended += 1
