"""``make bench-flow``: flow control measured on real Kafka, Redis and three worker processes.

1. Rate limit: a flood of ``limited50`` (``rate_limit="50/s"``) beside a flood of ``unlimited``
   tasks. Reports the achieved rate of the limited type (starts per second between its first and
   last start) and the unlimited type's throughput, against the unlimited type alone earlier in
   the same run (the ratio is what to read: the machine is shared and noisy).
2. Priorities (``TASKQ_PRIORITY_LANES``): a backlog of normal ``sleepy`` tasks, then one high task
   every 50 ms; reports the submit-to-start wait of the high tasks (p50/p99/max) and of the normal
   ones. Results go to the terminal and ``bench/results/flow-<stamp>.json``. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scenarios import pct
from taskq import Client
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.models import TaskRecord
from taskq.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _settings(kafka: KafkaServer, redis: RedisServer, kafka_client: str, tag: str, *, lanes: bool) -> Settings:
    uid = f"{tag}-{kafka_client}-{int(time.time() * 1000)}"
    return Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url, tasks_topic=f"flow-{uid}",
                    dead_topic=f"flow-dead-{uid}", group_id=f"flow-{uid}", prefix=f"flow-{uid}:",
                    kafka_client=kafka_client, priority_lanes=lanes)  # type: ignore[arg-type]


class Stack:
    """Three worker processes on one settings object."""

    def __init__(self, settings: Settings, logdir: Path, concurrency: int) -> None:
        from tests.helpers import settings_env

        ensure_topics(settings)
        self.client = Client(settings)
        env = settings_env(settings)
        self.procs = []
        for w in range(3):
            with open(logdir / f"{settings.group_id}-w{w}.log", "ab") as fh:
                self.procs.append(spawn([sys.executable, "-m", "taskq", "worker", "--id", f"w{w}", "--concurrency",
                                         str(concurrency), "--tasks", "bench.flow_tasks"], env=env, stdout=fh))
        deadline = time.monotonic() + 90
        while sum(w.status == "alive" and bool(w.partitions) for w in self.client.workers()) < 3:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not join within 90 s; see " + str(logdir))
            time.sleep(0.3)

    def submit(self, task: str, n: int, *args: Any, **opts: Any) -> list[str]:
        subs = [self.client.submit_nowait(task, *args, **opts) for _ in range(n)]
        self.client.flush()
        return [s.id for s in subs]

    def finished(self, ids: list[str], *, timeout: float = 600) -> list[TaskRecord]:
        deadline = time.monotonic() + timeout
        while True:
            recs = self.client.store.get_many(ids)
            if all(r is not None and r.status.terminal for r in recs):
                return [r for r in recs if r is not None]
            if time.monotonic() > deadline:
                raise SystemExit(f"{sum(r is None or not r.status.terminal for r in recs)} tasks unfinished")
            time.sleep(0.2)

    def close(self) -> None:
        for p in self.procs:
            stop_process(p, timeout=20)
        self.client.close()


def _rate(recs: list[TaskRecord]) -> float:
    starts = sorted(r.started_at or 0 for r in recs)
    return (len(starts) - 1) / max(1e-9, starts[-1] - starts[0])


def _throughput(recs: list[TaskRecord]) -> float:
    return len(recs) / max(1e-9, max(r.finished_at or 0 for r in recs) - min(r.created_at or 0 for r in recs))


def rate_limit(kafka: KafkaServer, redis: RedisServer, kafka_client: str, logdir: Path, n: int) -> dict[str, Any]:
    stack = Stack(_settings(kafka, redis, kafka_client, "rate", lanes=False), logdir, concurrency=4)
    try:
        stack.finished(stack.submit("unlimited", 200))  # warm-up
        alone = _throughput(stack.finished(stack.submit("unlimited", n)))
        limited_ids = stack.submit("limited50", n // 2)
        free_ids = stack.submit("unlimited", n)
        free = _throughput(stack.finished(free_ids))
        limited = stack.finished(limited_ids)
        return {"kafka_client": kafka_client, "limit_per_s": 50, "limited_tasks": len(limited),
                "achieved_per_s": round(_rate(limited), 2), "error_pct": round((_rate(limited) / 50 - 1) * 100, 2),
                "unlimited_alone_per_s": round(alone, 1), "unlimited_beside_flood_per_s": round(free, 1),
                "unlimited_ratio": round(free / alone, 3)}
    finally:
        stack.close()


def priorities(kafka: KafkaServer, redis: RedisServer, kafka_client: str, logdir: Path, n: int) -> dict[str, Any]:
    stack = Stack(_settings(kafka, redis, kafka_client, "prio", lanes=True), logdir, concurrency=4)
    try:
        stack.finished(stack.submit("sleepy", 50, 0.0))  # warm-up
        backlog = stack.submit("sleepy", n, 0.03)
        urgent = []
        for _ in range(100):
            urgent.append(stack.client.submit("sleepy", 0.0, _priority="high"))
            time.sleep(0.05)
        high = stack.finished(urgent)
        normal = stack.finished(backlog)
        hw = [(r.started_at or 0) - (r.created_at or 0) for r in high]
        nw = [(r.started_at or 0) - (r.created_at or 0) for r in normal]
        still_backlogged = max(r.started_at or 0 for r in normal) > max(r.started_at or 0 for r in high)
        return {"kafka_client": kafka_client, "backlog": n, "high_tasks": len(high),
                "high_wait_p50_ms": round((pct(hw, 50) or 0) * 1000, 1),
                "high_wait_p99_ms": round((pct(hw, 99) or 0) * 1000, 1),
                "high_wait_max_ms": round(max(hw) * 1000, 1), "normal_wait_p50_ms": round((pct(nw, 50) or 0) * 1000, 1),
                "normal_wait_p99_ms": round((pct(nw, 99) or 0) * 1000, 1), "normal_still_backlogged": still_backlogged}
    finally:
        stack.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="confluent,kafka-python", help="Kafka clients to measure")
    ap.add_argument("--tasks", type=int, default=3000, help="unlimited tasks per flood (the limited flood is half)")
    ap.add_argument("--backlog", type=int, default=3000, help="normal tasks (30 ms each) ahead of the high ones")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taskq-bench-flow-"))
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
    redis.start()
    kafka.start()
    rows: dict[str, list[dict[str, Any]]] = {"rate_limit": [], "priorities": []}
    try:
        for kc in args.clients.split(","):
            rows["rate_limit"].append(rate_limit(kafka, redis, kc, root, args.tasks))
            print(json.dumps(rows["rate_limit"][-1]), flush=True)
            rows["priorities"].append(priorities(kafka, redis, kc, root, args.backlog))
            print(json.dumps(rows["priorities"][-1]), flush=True)
    finally:
        kafka.stop()
        redis.stop()
    out = ROOT / "bench" / "results" / f"flow-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": os.uname().nodename, "cores": os.cpu_count(), **rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
