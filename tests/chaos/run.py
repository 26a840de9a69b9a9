"""Chaos run: drive a real local stack through worker kills, a graceful stop, a Kafka restart
and a Redis restart while tasks flow, then prove nothing was lost.

    python -m tests.chaos.run --tasks 10000      # make chaos
    python -m tests.chaos.run --tasks 500        # the short version inside make test
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer

from taskq.client import Client, TaskRequest
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.errors import TaskqError
from taskq.kafka import ensure_topics
from taskq.models import TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.chaos.schedules import ScheduleProbe
from tests.chaos.workflows import WorkflowProbe
from tests.helpers import settings_env


@dataclass
class Report:
    accepted: int = 0
    terminal: int = 0
    lost: int = 0
    wrong: list[str] = field(default_factory=list)
    stuck_running: int = 0
    duplicate_executions: int = 0
    unexplained_duplicates: list[str] = field(default_factory=list)
    dead_expected: int = 0
    dead_letters: int = 0
    unexpected_dead: list[str] = field(default_factory=list)
    # Dead because the kills caught it mid-run more often than max_lost_runs allows: the poison
    # containment doing its job (a task its worker never survives must not run forever), so expected.
    dead_by_kills: list[str] = field(default_factory=list)
    kills: int = 0
    graceful_stops: int = 0
    kafka_restarts: int = 0
    redis_restarts: int = 0
    max_recovery: float = 0.0
    slowest_recovery: str = ""  # which task, for the log
    submit_errors: int = 0
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)
    not_terminal: dict[str, int] = field(default_factory=dict)  # status -> count
    samples: list[str] = field(default_factory=list)  # a few non-terminal records, for the log
    schedules: str = ""  # the periodic schedules' tally (tests/chaos/schedules.py)
    workflows: str = ""  # the chords' and chains' tally (tests/chaos/workflows.py)

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and not self.wrong and self.stuck_running == 0 and not self.unexplained_duplicates
                and not self.unexpected_dead and self.dead_letters == self.dead_expected
                and self.terminal == self.accepted)

    def render(self) -> str:
        lines = [
            f"tasks accepted           {self.accepted}",
            f"terminal                 {self.terminal}",
            f"lost                     {self.lost}",
            f"wrong results            {len(self.wrong)}",
            f"stuck in running         {self.stuck_running}",
            f"duplicate executions     {self.duplicate_executions} (all of tasks in flight at a kill: "
            f"{'yes' if not self.unexplained_duplicates else 'NO ' + str(self.unexplained_duplicates[:5])})",
            f"dead letters             {self.dead_letters} (expected {self.dead_expected})",
            f"dead after kills         {len(self.dead_by_kills)} (caught by more kills than max_lost_runs)",
            f"worker kills (SIGKILL)   {self.kills}",
            f"graceful stops (SIGTERM) {self.graceful_stops}",
            f"Kafka / Redis restarts   {self.kafka_restarts} / {self.redis_restarts}",
            f"max kill -> recovery     {self.max_recovery:.1f}s {self.slowest_recovery}",
            f"submits refused (retried) {self.submit_errors}",
            f"wall time                {self.seconds:.0f}s",
            f"not terminal by status   {self.not_terminal or '-'}",
            *self.samples,
            *([self.schedules] if self.schedules else []),
            *([self.workflows] if self.workflows else []),
            "result                   " + ("OK: nothing lost" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


def read_topic(settings: Settings, topic: str, *, quiet: float = 3.0) -> list[dict[str, Any]]:
    """Every message of a one-partition topic, from the beginning."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=int(quiet * 1000))
        if not batch and out:
            break  # nothing new for `quiet` seconds
        for records in batch.values():
            out += [orjson.loads(r.value) for r in records]
    consumer.close()
    return out


class Chaos:
    def __init__(self, *, tasks: int, workers: int, duration: float, root: Path, seed: int,
                 kafka_client: str = "kafka-python") -> None:
        self.n = tasks
        self.kafka_client = kafka_client
        self.n_workers = workers
        self.duration = duration
        self.root = root
        self.rng = random.Random(seed)
        self.redis = RedisServer(data_dir=root / "redis", port=free_port())
        self.kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
        self.procs: dict[str, Any] = {}
        self.expected: dict[str, tuple[str, Any]] = {}  # id -> (kind, expected result)
        self.kill_times: list[tuple[float, str]] = []
        self.report = Report()
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.schedules = ScheduleProbe()
        # 500 chords and 500 chains of 5 in the full run (10,000 tasks), 25 and 25 in the short one.
        self.workflows = WorkflowProbe(chords=max(10, tasks // 20), chains=max(10, tasks // 20), seed=seed)

    def log(self, text: str) -> None:
        line = f"[chaos {time.strftime('%H:%M:%S')}] {text}"
        self.report.events.append(line)
        print(line, flush=True)

    def start_worker(self, wid: str) -> None:
        fh = open(self.root / f"{wid}.log", "ab")  # noqa: SIM115 - the child owns it
        self.procs[wid] = spawn([sys.executable, "-m", "taskq", "worker", "--id", wid, "-c", "8"],
                                env=settings_env(self.settings), stdout=fh)

    def submitter(self, client: Client) -> None:
        per_batch = 10
        pause = self.duration * 0.8 / max(1, self.n / per_batch)
        i = 0
        while i < self.n:
            reqs, kinds = [], []
            for j in range(i, min(self.n, i + per_batch)):
                r = self.rng.random()
                if r < 0.6:
                    reqs.append(TaskRequest("add", (j, 1)))
                    kinds.append(("add", j + 1))
                elif r < 0.9:
                    s = round(self.rng.uniform(0.05, 2.0), 2)
                    reqs.append(TaskRequest("sleep", (s,)))
                    kinds.append(("sleep", s))
                else:
                    reqs.append(TaskRequest("fail", ("chaos",), max_retries=1))
                    kinds.append(("fail", None))
            try:
                ids = client.submit_many(reqs)
            except TaskqError:
                self.report.submit_errors += 1
                time.sleep(0.5)
                continue  # not accepted: submit the batch again
            with self.lock:
                for tid, kind in zip(ids, kinds, strict=True):
                    self.expected[tid] = kind
            i += len(reqs)
            time.sleep(pause)

    def _killed_past_the_limit(self, history: list[dict[str, Any]]) -> bool:
        """Whether a run history is that of a task lost more than ``max_lost_runs`` times, every loss
        a SIGKILL this run sent to the worker running it after the run started."""
        lost = [h for h in history if h.get("outcome") == "lost"]
        return len(lost) > self.settings.max_lost_runs and all(
            any(w == h["worker"] and t >= h["started_at"] for t, w in self.kill_times) for h in lost)

    def chaos(self, stop: threading.Event) -> None:
        try:
            self._chaos(stop)
        except Exception as exc:
            self.log(f"chaos thread failed: {exc!r}")
            self.report.wrong.append(f"chaos thread failed: {exc!r}")
        # Children started here die with this thread (PR_SET_PDEATHSIG is per thread): keep it alive.
        self.finished.wait()

    def _busiest(self, store: Store) -> str | None:
        """The live worker process with the most runs in progress, read from the running tasks'
        records (a worker's own heartbeat fields can still be those of its previous life)."""
        try:
            running = store.list_tasks(status=TaskState.RUNNING, limit=200, count=False).items
        except TaskqError:
            return None  # Redis restarting
        recent = time.time() - 3.0  # started by the process alive now, not by one killed before
        counts: dict[str, int] = {}
        for r in running:
            if r.worker in self.procs and self.procs[r.worker].poll() is None and (r.started_at or 0) >= recent:
                counts[r.worker] = counts.get(r.worker, 0) + 1
        return max(counts, key=lambda w: counts[w]) if counts else None

    def _chaos(self, stop: threading.Event) -> None:
        store = Store(self.settings)
        try:
            self._chaos_loop(stop, store)
        finally:
            store.close()

    def _chaos_loop(self, stop: threading.Event, store: Store) -> None:
        t0 = time.monotonic()
        plan = {"term": 0.3, "kafka": 0.45, "redis": 0.7}
        done: set[str] = set()
        next_kill = t0 + 3
        while not stop.is_set():
            now = time.monotonic()
            frac = (now - t0) / self.duration
            if now >= next_kill and frac < 0.85:
                # A worker in the middle of runs: a kill of an idle (or just restarted, still joining)
                # worker proves nothing about redelivery. None busy yet: look again shortly.
                wid = self._busiest(store)
                if wid is not None and self.procs[wid].poll() is None:
                    self.procs[wid].send_signal(signal.SIGKILL)
                    self.procs[wid].wait()
                    self.kill_times.append((time.time(), wid))
                    self.report.kills += 1
                    self.log(f"SIGKILL {wid}")
                    time.sleep(1)
                    self.start_worker(wid)
                    next_kill = now + self.rng.uniform(3, 6)
            if frac >= plan["term"] and "term" not in done:
                done.add("term")
                wid = self.rng.choice(sorted(self.procs))
                self.log(f"SIGTERM {wid} (graceful)")
                stop_process(self.procs[wid], timeout=40)
                self.report.graceful_stops += 1
                self.start_worker(wid)
            if frac >= plan["kafka"] and "kafka" not in done:
                done.add("kafka")
                self.log("stopping Kafka")
                self.kafka.stop()
                time.sleep(5)
                self.kafka.start()
                self.report.kafka_restarts += 1
                self.log("Kafka is back")
            if frac >= plan["redis"] and "redis" not in done:
                done.add("redis")
                self.log("stopping Redis")
                self.redis.stop()
                time.sleep(3)
                self.redis.start()
                self.report.redis_restarts += 1
                self.log("Redis is back")
            stop.wait(0.2)

    def run(self) -> Report:
        start = time.monotonic()
        self.redis.start()
        self.kafka.start()
        self.settings = Settings(kafka_bootstrap=self.kafka.bootstrap, redis_url=self.redis.url, session_timeout=6,
                                 heartbeat_interval=0.5, heartbeat_ttl=3, partitions=12, shutdown_grace=20,
                                 retry_backoff=0.5, submit_timeout=5, kafka_client=self.kafka_client,
                                 kafka_log_level="WARNING")  # worker logs with timestamps and threads
        ensure_topics(self.settings)
        try:
            for i in range(1, self.n_workers + 1):
                self.start_worker(f"w{i}")
            client = Client(self.settings)
            self.schedules.start(client)
            stop = threading.Event()
            chaos = threading.Thread(target=self.chaos, args=(stop,), daemon=True)
            chaos.start()
            flows = threading.Thread(target=self.workflows.submitter, args=(client, self.duration, stop), daemon=True)
            flows.start()
            self.submitter(client)
            flows.join(timeout=self.duration + 30)
            self.log(f"all {len(self.expected)} tasks accepted; waiting for them to finish")
            while chaos.is_alive() and not stop.is_set() and time.monotonic() - start < self.duration + 30:
                stop.wait(0.5)
                if time.monotonic() - start > self.duration:
                    stop.set()
            stop.set()
            self.schedules.stop(client)
            self.check(client, timeout=240)
            client.close()
        finally:
            for p in self.procs.values():
                stop_process(p, timeout=30)
            self.kafka.stop()
            self.redis.stop()
            self.finished.set()
        self.report.seconds = time.monotonic() - start
        return self.report

    def check(self, client: Client, *, timeout: float) -> None:
        store = Store(self.settings)
        ids = list(self.expected)
        deadline = time.monotonic() + timeout
        records: list[Any] = []
        while time.monotonic() < deadline:
            try:
                records = []
                for k in range(0, len(ids), 500):
                    records += store.get_many(ids[k:k + 500])
            except TaskqError:
                time.sleep(1)
                continue
            if all(r is not None and r.status.terminal for r in records):
                break
            time.sleep(1)
        rep = self.report
        rep.accepted = len(ids)
        for tid, rec in zip(ids, records, strict=True):
            kind, want = self.expected[tid]
            if rec is None:
                rep.lost += 1
                continue
            if rec.status.terminal:
                rep.terminal += 1
            else:
                rep.not_terminal[rec.status.value] = rep.not_terminal.get(rec.status.value, 0) + 1
                if len(rep.samples) < 5:
                    rep.samples.append(f"  {tid} {kind} {rec.status.value} attempts={rec.attempts} "
                                       f"history={rec.history}")
            if rec.status == TaskState.RUNNING:
                rep.stuck_running += 1
            expected_runs = 2 if kind == "fail" else 1
            if kind == "fail":
                rep.dead_expected += 1
                if rec.status != TaskState.DEAD:
                    rep.wrong.append(tid)
            elif rec.status == TaskState.DEAD and self._killed_past_the_limit(rec.history):
                rep.dead_expected += 1
                rep.dead_by_kills.append(tid)
            elif rec.status != TaskState.SUCCESS or rec.result != want:
                if rec.status == TaskState.DEAD:
                    rep.unexpected_dead.append(tid)
                rep.wrong.append(tid)
            extra = rec.attempts - expected_runs
            if extra > 0:
                rep.duplicate_executions += extra
                lost = [h for h in rec.history if h.get("outcome") == "lost"]
                if not lost:
                    rep.unexplained_duplicates.append(tid)
                for h in lost:
                    kills = [t for t, w in self.kill_times if w == h["worker"] and t >= h["started_at"]]
                    nxt = [x for x in rec.history if x["attempt"] == h["attempt"] + 1]
                    if kills and nxt and nxt[0].get("finished_at"):
                        took = nxt[0]["finished_at"] - min(kills)
                        if took > rep.max_recovery:
                            rep.max_recovery = took
                            rep.slowest_recovery = (f"({tid}: {h['worker']} killed at "
                                                    f"{time.strftime('%H:%M:%S', time.localtime(min(kills)))}, "
                                                    f"attempt {h['attempt'] + 1} by {nxt[0]['worker']})")
        self.workflows.check(store, timeout=max(30.0, deadline - time.monotonic()),
                             killed_past_limit=self._killed_past_the_limit)
        rep.workflows = self.workflows.report.render()
        rep.wrong += [f"workflow {w}" for w in self.workflows.report.wrong]
        self.schedules.check(store, timeout=max(10.0, deadline - time.monotonic()))
        rep.schedules = self.schedules.report.render()
        rep.wrong += [f"schedule {w}" for w in self.schedules.report.wrong]
        store.close()
        dead_ids = {d.get("id") for d in read_topic(self.settings, self.settings.dead_topic)}
        rep.dead_letters = len(dead_ids & set(ids))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--duration", type=float, default=None, help="seconds of chaos (default scales with --tasks)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    duration = args.duration or max(45.0, args.tasks / 60)
    root = Path(tempfile.mkdtemp(prefix="taskq-chaos-"))
    report = Chaos(tasks=args.tasks, workers=args.workers, duration=duration, root=root, seed=args.seed).run()
    print(report.render())
    print(f"(logs in {root})")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
