"""``make bench-redis``: Redis bytes per finished task (record, indexes, events), for sizing.

Starts its own Redis (devstack), records N ``add`` tasks the way the SDK and a worker do (create,
start, finish as success), and reports ``used_memory`` growth per task, the record hash alone
(``MEMORY USAGE``) and its encoding. Sizing: bytes per task x tasks per day x TTL in days.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from taskq.devstack import RedisServer, free_port
from taskq.models import TaskMessage, TaskState, new_task_id
from taskq.settings import Settings
from taskq.store import Finish, Store


def measure(n: int, store: Store) -> dict[str, float | str]:
    store.r.flushall()
    base = int(store.r.info("memory")["used_memory"])
    ids: list[str] = []
    for start in range(0, n, 500):
        msgs = [TaskMessage(id=new_task_id(), task="add", args=[i, 1]) for i in range(start, min(n, start + 500))]
        store.create(msgs)
        store.start_many(msgs, worker="w1", lease="L1")
        store.finish_many([Finish(m.id, 1, TaskState.SUCCESS, i + 1) for i, m in enumerate(msgs)],
                          worker="w1", lease="L1")
        ids += [m.id for m in msgs]
    used = int(store.r.info("memory")["used_memory"]) - base
    events = int(store.r.memory_usage(store.key("events")) or 0)
    record = int(store.r.memory_usage(store.key("task", ids[0])) or 0)
    return {"tasks": n, "bytes_per_task": used / n, "bytes_per_task_without_events": (used - events) / n,
            "record_bytes": record, "record_encoding": str(store.r.object("encoding", store.key("task", ids[0])))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taskq-bench-redis-"))
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    redis.start()
    try:
        store = Store(Settings(redis_url=redis.url))
        row = measure(args.tasks, store)
        store.close()
    finally:
        redis.stop()
    print(json.dumps(row, indent=1))
    per_day = 1_000_000
    for days in (1, 7):
        gb = row["bytes_per_task"] * per_day * days / 1e9  # type: ignore[operator]
        print(f"{per_day:,} tasks/day kept {days} day(s): about {gb:.1f} GB of Redis")


if __name__ == "__main__":
    main()
