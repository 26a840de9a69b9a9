"""One peer's throughput run, executed with the peers' own virtualenv (bench/.peers/venv):

    bench/.peers/venv/bin/python -m bench.peer_bench --system dramatiq --redis-url redis://... --tasks 20000

Starts that system's workers (same process count as taskq's), submits `add` tasks one at a time (and
in bulk where the library has a bulk API), waits until every task has run, prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def workers_cmd(system: str, n: int, url: str) -> list[list[str]]:
    py = sys.executable
    if system == "celery":
        return [[py, "-m", "celery", "-A", "bench.peers.celery_tasks", "worker", "-c", str(n), "--pool", "prefork",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]]
    if system == "dramatiq":
        return [[py, "-m", "dramatiq", "bench.peers.dramatiq_tasks", "--processes", str(n), "--threads", "4"]]
    if system == "arq":
        return [[py, "-m", "arq", "bench.peers.arq_tasks.WorkerSettings"] for _ in range(n)]
    if system == "rq":
        return [[str(VENV_BIN / "rq"), "worker-pool", "-n", str(n), "--url", url, "-q"]]
    raise SystemExit(f"unknown system {system!r}")


def submit(system: str, n: int, url: str, *, bulk: bool) -> bool:
    """Returns False when the system has no bulk API."""
    if system == "celery":
        if bulk:
            return False
        from bench.peers.celery_tasks import add

        for i in range(n):
            add.delay(i, 1)
    elif system == "dramatiq":
        if bulk:
            return False
        from bench.peers.dramatiq_tasks import add as dadd

        for i in range(n):
            dadd.send(i, 1)
    elif system == "arq":
        if bulk:
            return False
        from arq import create_pool
        from arq.connections import RedisSettings

        async def go() -> None:
            pool = await create_pool(RedisSettings.from_dsn(url))
            for i in range(n):
                await pool.enqueue_job("add", i, 1)
            await pool.aclose()

        asyncio.run(go())
    elif system == "rq":
        from rq import Queue

        from bench.peers.rq_tasks import add as radd

        q = Queue(connection=redis.Redis.from_url(url))
        if bulk:
            for start in range(0, n, 500):
                q.enqueue_many([Queue.prepare_data(radd, (i, 1)) for i in range(start, min(n, start + 500))])
        else:
            for i in range(n):
                q.enqueue(radd, i, 1)
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bulk", action="store_true")
    args = ap.parse_args()
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_REDIS_URL=args.redis_url)
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for cmd in workers_cmd(args.system, args.workers, args.redis_url)]
    try:
        time.sleep(4)  # let the workers connect and import
        key = f"bench:{args.system}:done"
        t0 = time.monotonic()
        if not submit(args.system, args.tasks, args.redis_url, bulk=args.bulk):
            print(json.dumps({"system": args.system, "bulk": True, "supported": False}))
            return
        t_sub = time.monotonic()
        deadline = t_sub + 600
        while int(r.get(key) or 0) < args.tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        t_end = time.monotonic()
        finished = int(r.get(key) or 0)
        print(json.dumps({
            "system": args.system, "bulk": args.bulk, "supported": True, "tasks": args.tasks,
            "finished": finished, "enqueue_per_s": args.tasks / (t_sub - t0),
            "end_to_end_per_s": finished / (t_end - t0), "seconds": t_end - t0,
        }))
    finally:
        for p in procs:  # our own workers, by PID (their process groups)
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
