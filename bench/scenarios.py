"""The four benchmark scenarios, one system at a time; prints one JSON line.

Runs in taskq's virtualenv (``--system taskq``) or in a peer's own (bench/.peers/<name>), so it
imports neither taskq nor any peer at module level. Every system runs the same task bodies
(bench/peers/common.py) with the same number of workers and execution slots per worker:

- taskq:    ``taskq worker -c SLOTS`` (threads), Kafka + Redis
- celery:   ``celery worker --pool prefork -c SLOTS``, acks_late, Redis broker and results
- dramatiq: ``dramatiq --processes 1 --threads SLOTS``, Redis broker, Results middleware
- arq:      ``arq`` with ``max_jobs = SLOTS``
- rq:       ``rq worker-pool -n SLOTS``

    python -m bench.scenarios --system dramatiq --scenario latency --redis-url redis://... --bench-db 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far) for every process on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        rest = stat[stat.rfind(")") + 2:].split()  # the command name may contain spaces
        table[int(name)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
    return table


def process_tree(root: int, table: dict[int, tuple[int, float]] | None = None) -> list[int]:
    """``root`` and all its descendants, found by parent PID (pool children that called setsid too)."""
    table = _proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def cpu_split(workers: list[int], servers: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of this client, the workers (with their pool children) and the servers."""
    table = _proc_table()
    t = os.times()
    out = {"client": t.user + t.system,
           "workers": sum(table[pid][1] for root in workers for pid in process_tree(root, table))}
    out |= {name: table.get(pid, (0, 0.0))[1] for name, pid in servers.items()}
    return out


class System:
    """Start workers, submit tasks, and tell when the system has everything queued."""

    name = ""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        os.environ["BENCH_REDIS_URL"] = args.bench_url  # the task modules read it when imported
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_REDIS_URL=args.bench_url,
                        BENCH_SLOTS=str(args.slots))

    def worker_cmd(self, index: int) -> list[str]:
        raise NotImplementedError

    def start_workers(self, n: int, logdir: Path, *, first: int = 0) -> list[subprocess.Popen[bytes]]:
        procs = []
        for i in range(first, first + n):
            with open(logdir / f"{self.name}-w{i}.log", "ab") as fh:
                procs.append(subprocess.Popen(self.worker_cmd(i), cwd=ROOT, env=self.env, stdout=fh,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        return procs

    def wait_ready(self, n: int) -> None:
        time.sleep(4)  # peers have no readiness signal; they connect and import in well under 4 s

    def submit(self, task: str, *args: Any, key: str | None = None) -> None:
        raise NotImplementedError

    def submit_bulk(self, task: str, arglist: list[tuple[Any, ...]]) -> bool:
        return False  # no bulk API

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Taskq(System):
    """taskq with the kafka-python client; ``TaskqConfluent`` is the same with librdkafka."""

    name = "taskq"
    kafka_client = "kafka-python"
    group_protocol: str | None = None

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        from taskq.client import Client
        from taskq.kafka import ensure_topics
        from taskq.settings import Settings
        from taskq.store import Store

        uid = uuid.uuid4().hex[:8]
        self.settings = Settings(kafka_bootstrap=args.kafka, redis_url=args.redis_url, tasks_topic=f"bench-{uid}",
                                 group_id=f"bench-{uid}", prefix=f"bench-{uid}:", dead_topic=f"bench-dead-{uid}",
                                 kafka_client=self.kafka_client, group_protocol=self.group_protocol,
                                 tasks_modules=["bench.taskq_tasks"],
                                 **({} if args.session_timeout is None else {"session_timeout": args.session_timeout}))
        ensure_topics(self.settings)
        from tests.helpers import settings_env

        self.env.update(settings_env(self.settings))
        # make dev's defaults: INFO, one log line per task event (the peers log less; that cost is ours).
        self.env["TASKQ_LOG_LEVEL"] = "INFO"
        self.store = Store(self.settings)
        self.client = Client(self.settings, store=self.store)

    def worker_cmd(self, index: int) -> list[str]:
        return [sys.executable, "-m", "taskq", "worker", "--id", f"b{index}", "-c", str(self.args.slots)]

    def wait_ready(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ws = [w for w in self.store.workers() if w.status == "alive"]
            owned = sum(len(w.partitions) for w in ws)
            if len(ws) == n and all(w.partitions for w in ws) and owned == self.settings.partitions:
                return
            time.sleep(0.2)
        raise SystemExit(f"taskq workers did not all get partitions: {self.store.workers()}")

    def submit(self, task: str, *args: Any, key: str | None = None) -> None:
        if self.args.mode == "pipelined":
            self.client.submit_nowait(f"bench.{task}", *args, _key=key)
        else:
            self.client.submit(f"bench.{task}", *args, _key=key)

    def submit_bulk(self, task: str, arglist: list[tuple[Any, ...]]) -> bool:
        from taskq.client import TaskRequest

        self.client.submit_many([TaskRequest(f"bench.{task}", a) for a in arglist])
        return True

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self.client.close()


class TaskqConfluent(Taskq):
    name = "taskq-ck"
    kafka_client = "confluent"


class TaskqConfluentClassic(Taskq):
    """librdkafka with the classic group protocol (its default is KIP-848, see README Performance)."""

    name = "taskq-ck-classic"
    kafka_client = "confluent"
    group_protocol = "classic"


class Celery(System):
    name = "celery"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.env["BENCH_VISIBILITY"] = str(args.visibility)
        os.environ["BENCH_VISIBILITY"] = str(args.visibility)
        from bench.peers import celery_tasks

        self.tasks = celery_tasks

    def worker_cmd(self, index: int) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "bench.peers.celery_tasks", "worker", "-n", f"w{index}@%h",
                "-c", str(self.args.slots), "--pool", "prefork", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "--loglevel", "WARNING"]

    def submit(self, task: str, *args: Any, key: str | None = None) -> None:
        getattr(self.tasks, task).delay(*args)


class Dramatiq(System):
    name = "dramatiq"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        from bench.peers import dramatiq_tasks

        self.tasks = dramatiq_tasks

    def worker_cmd(self, index: int) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "bench.peers.dramatiq_tasks", "--processes", "1",
                "--threads", str(self.args.slots)]

    def submit(self, task: str, *args: Any, key: str | None = None) -> None:
        getattr(self.tasks, task).send(*args)


class Arq(System):
    name = "arq"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        from arq import create_pool
        from arq.connections import RedisSettings

        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(args.bench_url)))

    def worker_cmd(self, index: int) -> list[str]:
        return [sys.executable, "-m", "arq", "bench.peers.arq_tasks.WorkerSettings"]

    def submit(self, task: str, *args: Any, key: str | None = None) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job(task, *args))

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())


class Rq(System):
    name = "rq"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        from rq import Queue

        from bench.peers import rq_tasks

        self.tasks = rq_tasks
        self.queue = Queue(connection=redis.Redis.from_url(args.bench_url))

    def worker_cmd(self, index: int) -> list[str]:
        rq = str(Path(sys.executable).parent / "rq")
        return [rq, "worker-pool", "-n", str(self.args.slots), "--url", self.args.bench_url, "-q"]

    def submit(self, task: str, *args: Any, key: str | None = None) -> None:
        self.queue.enqueue(getattr(self.tasks, task), *args)

    def submit_bulk(self, task: str, arglist: list[tuple[Any, ...]]) -> bool:
        from rq import Queue

        fn = getattr(self.tasks, task)
        self.queue.enqueue_many([Queue.prepare_data(fn, a) for a in arglist])
        return True


SYSTEMS: dict[str, type[System]] = {"taskq": Taskq, "taskq-ck": TaskqConfluent,
                                    "taskq-ck-classic": TaskqConfluentClassic,
                                    "celery": Celery, "dramatiq": Dramatiq, "arq": Arq, "rq": Rq}


# --- scenarios ----------------------------------------------------------------
def throughput(sys_: System, r: redis.Redis, a: argparse.Namespace, workers: list[int]) -> dict[str, Any]:
    n = a.tasks
    servers = _servers(sys_, a)
    cpu0 = cpu_split(workers, servers)
    t0 = time.monotonic()
    if a.mode == "bulk":
        for start in range(0, n, 500):
            if not sys_.submit_bulk("add", [(i, 1) for i in range(start, min(n, start + 500))]):
                return {"supported": False}
    else:
        for i in range(n):
            sys_.submit("add", i, 1)
        sys_.flush()
    t_sub = time.monotonic()
    deadline = t_sub + a.limit
    while int(r.get("done") or 0) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    t_end = time.monotonic()
    cpu = _cpu_per_task(cpu0, cpu_split(workers, servers), int(r.get("done") or 0))
    finished = int(r.get("done") or 0)
    return {"tasks": n, "finished": finished, "enqueue_per_s": n / (t_sub - t0),
            "end_to_end_per_s": finished / (t_end - t0), "seconds": t_end - t0, "cpu_ms_per_task": cpu}


def warm_up(sys_: System, r: redis.Redis, n: int = 50) -> None:
    """Connections, metadata and first imports happen here, not in the measurement (every system)."""
    for i in range(n):
        sys_.submit("add", i, 1)
    sys_.flush()
    deadline = time.monotonic() + 60
    while int(r.get("done") or 0) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    if int(r.get("done") or 0) < n:
        raise SystemExit(f"{sys_.name}: warm-up tasks did not finish within 60 s")
    r.delete("done")


def warm_up_paced(sys_: System, r: redis.Redis, rate: float, seconds: float, limit: float) -> None:
    """A few seconds at the measured rate first, so JIT compilation (Kafka's JVM), connection pools and
    caches are warm for every system; those tasks are not measured."""
    if seconds <= 0:
        return
    n, _ = _paced(sys_, rate, seconds)
    _latencies(r, n, limit)
    r.delete("lat:start", "lat:done")


def _paced(sys_: System, rate: float, seconds: float, *, key: str | None = None) -> tuple[int, float]:
    """Submit ``stamp`` tasks at a steady rate; returns how many, and the rate achieved."""
    n = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(n):
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sys_.submit("stamp", time.time(), key=key)
    sys_.flush()
    return n, n / (time.monotonic() - t0)


def _latencies(r: redis.Redis, n: int, limit: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while r.llen("lat:done") < n and time.monotonic() < deadline:
        time.sleep(0.05)
    out: dict[str, Any] = {"finished": r.llen("lat:done")}
    for kind in ("start", "done"):
        vals = [float(v) for v in r.lrange(f"lat:{kind}", 0, -1)]
        out[kind] = {f"p{q}": pct(vals, q) for q in (50, 95, 99)} | {"max": max(vals) if vals else None}
    return out


def _servers(sys_: System, a: argparse.Namespace) -> dict[str, int]:
    if not a.server_pids:
        return {}
    return dict(zip(("kafka", "redis"), a.server_pids, strict=False)) if sys_.name.startswith("taskq") else \
        {"redis": a.server_pids[-1]}


def _cpu_per_task(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """Where the CPU went, per task: the 2 cores are shared by all of these."""
    cpu = {k: round((after[k] - before[k]) * 1000 / max(n, 1), 4) for k in after}
    cpu["total"] = round(sum(cpu.values()), 4)
    return cpu


def latency(sys_: System, r: redis.Redis, a: argparse.Namespace, workers: list[int]) -> dict[str, Any]:
    servers = _servers(sys_, a)
    cpu0 = cpu_split(workers, servers)
    n, achieved = _paced(sys_, a.rate, a.seconds)
    out = _latencies(r, n, a.limit)
    return {"tasks": n, "rate": a.rate, "achieved_rate": achieved, "seconds": a.seconds, **out,
            "cpu_ms_per_task": _cpu_per_task(cpu0, cpu_split(workers, servers), n)}


def head_of_line(sys_: System, r: redis.Redis, a: argparse.Namespace) -> dict[str, Any]:
    sys_.submit("nap", -1, a.long, key="hol")
    sys_.flush()
    deadline = time.monotonic() + 30
    while not r.exists("runs:-1") and time.monotonic() < deadline:
        time.sleep(0.01)
    if not r.exists("runs:-1"):
        raise SystemExit(f"{sys_.name}: the long task did not start within 30 s")
    n, achieved = _paced(sys_, a.rate, a.seconds, key="hol")
    out = {"tasks": n, "rate": a.rate, "achieved_rate": achieved, "long_seconds": a.long,
           **_latencies(r, n, a.limit)}
    out["long_still_running"] = not r.exists("end:-1")
    return out


def recovery(sys_: System, r: redis.Redis, a: argparse.Namespace, procs: list[subprocess.Popen[bytes]]
             ) -> dict[str, Any]:
    n = a.tasks
    t0 = time.time()
    for i in range(n):
        sys_.submit("nap", i, a.nap)
    sys_.flush()
    killed: set[int] = set()  # process groups of the killed worker's processes
    kill_at = None
    if a.kill:
        time.sleep(max(0.0, t0 + a.kill_at - time.time()))
        # The whole worker at once, like a lost pod: its process group and every descendant (RQ's
        # work-horses leave the pool's group with setsid), all our own processes, by PID.
        tree = process_tree(procs[0].pid)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                killed.add(os.getpgid(pid))
        kill_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(procs[0].pid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + a.limit
    while time.monotonic() < deadline:
        if sum(1 for _ in r.scan_iter("end:*", count=1000)) >= n:
            break
        time.sleep(0.1)
    ends = {}
    for i in range(n):
        v = r.get(f"end:{i}")
        if v:
            pg, ts = v.decode().split()
            ends[i] = (int(pg), float(ts))
    out: dict[str, Any] = {"tasks": n, "finished": len(ends), "limit": a.limit,
                           "makespan": (max(t for _, t in ends.values()) - t0) if len(ends) == n else None}
    if a.kill:
        assert killed and kill_at is not None
        orphans = []  # started on the killed worker and not finished there before the kill
        for i in range(n):
            runs = [x.decode().split() for x in r.lrange(f"runs:{i}", 0, -1)]
            started_there = any(int(pg) in killed and float(ts) <= kill_at for pg, ts in runs)
            end = ends.get(i)
            finished_there = end is not None and end[0] in killed and end[1] <= kill_at
            if started_there and not finished_there:
                orphans.append(i)
        unfinished = [i for i in orphans if i not in ends]
        out["orphans"] = len(orphans)
        out["orphans_unfinished"] = len(unfinished)
        out["recovery_seconds"] = (max(ends[i][1] for i in orphans) - kill_at
                                   if orphans and not unfinished else None)
    return out


def _kill_tree(root: int) -> None:
    """SIGKILL a worker like a lost pod: its process group and every descendant (our own, by PID)."""
    tree = process_tree(root)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(root, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def churn(sys_: System, r: redis.Redis, a: argparse.Namespace, procs: list[subprocess.Popen[bytes]],
          logdir: Path) -> dict[str, Any]:
    """A steady stream of short tasks while one worker is SIGKILLed every ``kill_every`` seconds and
    replaced at once (a Deployment recreating the pod). Reports how long tasks waited beyond a calm
    wait: the worst case is what a user sees during a bad minute."""
    n = int(a.rate * a.seconds)
    submitted: dict[int, float] = {}
    t0 = time.time()
    next_kill, kills, victim, index = t0 + a.kill_every, 0, 0, len(procs)
    for i in range(n):
        due = t0 + i / a.rate
        while (now := time.time()) < due:
            if now >= next_kill:
                _kill_tree(procs[victim].pid)
                procs[victim].wait()
                procs[victim] = sys_.start_workers(1, logdir, first=index)[0]
                index, kills, victim = index + 1, kills + 1, (victim + 1) % len(procs)
                next_kill += a.kill_every
            time.sleep(min(0.002, max(0.0, due - now)))
        submitted[i] = time.time()
        sys_.submit("nap", i, a.nap, key=f"k{i}")
    sys_.flush()
    deadline = time.monotonic() + a.limit
    while time.monotonic() < deadline and sum(1 for _ in r.scan_iter("end:*", count=1000)) < n:
        time.sleep(0.2)
    extra: list[float] = []  # end - submit - the task's own run time: the time it waited, in total
    for i in range(n):
        v = r.get(f"end:{i}")
        if v:
            extra.append(float(v.decode().split()[1]) - submitted[i] - a.nap)
    return {"tasks": n, "finished": len(extra), "kills": kills, "kill_every": a.kill_every, "limit": a.limit,
            "wait_p50": pct(extra, 50), "wait_p99": pct(extra, 99), "wait_max": max(extra) if extra else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", required=True, choices=sorted(SYSTEMS))
    ap.add_argument("--scenario", required=True, choices=["throughput", "latency", "recovery", "hol", "churn"])
    ap.add_argument("--kill-every", type=float, default=5.0, help="churn: SIGKILL one worker this often")
    ap.add_argument("--redis-url", required=True, help="taskq's Redis (taskq only)")
    ap.add_argument("--bench-url", required=True, help="the Redis database for this system's bench keys")
    ap.add_argument("--kafka", help="Kafka bootstrap (taskq only)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slots", type=int, default=4, help="execution slots per worker")
    ap.add_argument("--mode", default="single", choices=["single", "bulk", "pipelined"])
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warm-seconds", type=float, default=5.0, help="paced warm-up before latency and hol")
    ap.add_argument("--long", type=float, default=30)
    ap.add_argument("--nap", type=float, default=1.0)
    ap.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--kill-at", type=float, default=5.0)
    ap.add_argument("--limit", type=float, default=600, help="give up waiting after this many seconds")
    ap.add_argument("--session-timeout", type=float, default=None,
                    help="taskq's Kafka session timeout (default: the settings' default, as make dev runs)")
    ap.add_argument("--server-pids", type=lambda v: [int(x) for x in v.split(",")], default=[],
                    help="Kafka and Redis PIDs (for the CPU split)")
    ap.add_argument("--visibility", type=int, default=3600, help="Celery's Redis visibility_timeout (default)")
    a = ap.parse_args()

    r = redis.Redis.from_url(a.bench_url)
    r.flushdb()
    sys_ = SYSTEMS[a.system](a)  # the peers keep their queues in the bench database too (flushed above)
    logdir = Path(tempfile.mkdtemp(prefix=f"bench-{a.system}-"))
    procs = sys_.start_workers(a.workers, logdir)
    result: dict[str, Any] = {"system": a.system, "scenario": a.scenario, "mode": a.mode, "workers": a.workers,
                              "slots": a.slots, "supported": True}
    try:
        sys_.wait_ready(a.workers)
        warm_up(sys_, r)
        if a.scenario in ("latency", "hol"):
            warm_up_paced(sys_, r, a.rate, a.warm_seconds, a.limit)
        if a.scenario == "throughput":
            result |= throughput(sys_, r, a, [p.pid for p in procs])
        elif a.scenario == "latency":
            result |= latency(sys_, r, a, [p.pid for p in procs])
        elif a.scenario == "hol":
            result |= head_of_line(sys_, r, a)
        elif a.scenario == "churn":
            result |= churn(sys_, r, a, procs, logdir)
        else:
            result |= recovery(sys_, r, a, procs)
        result.setdefault("supported", True)
    finally:
        with contextlib.suppress(Exception):
            sys_.close()
        for p in procs:  # our own workers, by PID (their process groups)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    result["logs"] = str(logdir)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
