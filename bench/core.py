"""Core measurements on this machine: tasks/s for N `add` tasks with W workers, and
SIGKILL recovery time. Starts its own Kafka and Redis on free ports.

    .venv/bin/python bench/core.py --tasks 5000 --workers 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskq.broker import ensure_topics
from taskq.client import Client, TaskRequest
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.settings import Settings
from taskq.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import settings_env


def wait_done(store: Store, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = store.counts()
        if c["success"] + c["failed"] >= n:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"not finished within {timeout}s: {store.counts()}")


def start_workers(settings: Settings, n: int, logdir: Path, concurrency: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(1, n + 1):
        fh = open(logdir / f"w{i}.log", "wb")  # noqa: SIM115
        procs.append(spawn([sys.executable, "-m", "taskq", "worker", "--id", f"w{i}", "-c", str(concurrency)],
                           env=settings_env(settings), stdout=fh))
    return procs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taskq-bench-"))
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
    redis.start()
    kafka.start()
    try:
        s = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url, session_timeout=6, heartbeat_ttl=3,
                     heartbeat_interval=0.5)
        ensure_topics(s)
        procs = start_workers(s, args.workers, root, args.concurrency)
        store = Store(s)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ws = [w for w in store.workers() if w.status == "alive" and w.partitions]
            if len(ws) == args.workers:
                break
            time.sleep(0.2)
        client = Client(s, store=store)
        t0 = time.monotonic()
        for i in range(0, args.tasks, args.batch):
            client.submit_many([TaskRequest("add", (j, 1)) for j in range(i, min(args.tasks, i + args.batch))])
        t_sub = time.monotonic()
        t_end = wait_done(store, args.tasks, timeout=600)
        print(f"{args.tasks} add tasks, {args.workers} workers x concurrency {args.concurrency}: "
              f"enqueue {args.tasks / (t_sub - t0):.0f}/s, end-to-end {args.tasks / (t_end - t0):.0f} tasks/s "
              f"({t_end - t0:.2f}s)")
        for p in procs:
            stop_process(p, timeout=30)
    finally:
        kafka.stop()
        redis.stop()


if __name__ == "__main__":
    main()
