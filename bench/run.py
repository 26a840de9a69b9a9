"""`make bench`: taskq against Celery, Dramatiq, arq and RQ, side by side in one run.

Same machine, same Redis server (a database each), same number of worker processes. Throughput:
N `add` tasks from one client, time until every one has run; one-at-a-time submit for everyone,
and each system's bulk submit where it has one. Several repetitions; medians, min-max, ratios.

    .venv/bin/python -m bench.run --tasks 20000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import settings_env

from taskq.broker import ensure_topics
from taskq.client import Client, TaskRequest
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.settings import Settings
from taskq.store import Store

ROOT = Path(__file__).resolve().parents[1]
PEERS = ["dramatiq", "celery", "arq", "rq"]
DB = {"taskq": 0, "celery": 1, "dramatiq": 2, "arq": 3, "rq": 4}


def taskq_run(kafka: KafkaServer, redis: RedisServer, *, tasks: int, workers: int, bulk: bool) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:8]
    s = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url, tasks_topic=f"bench-{uid}",
                 group_id=f"bench-{uid}", prefix=f"bench-{uid}:", dead_topic=f"bench-dead-{uid}")
    ensure_topics(s)
    logdir = Path(tempfile.mkdtemp(prefix="taskq-bench-"))
    procs = []
    for i in range(workers):
        with open(logdir / f"w{i}.log", "wb") as fh:
            procs.append(spawn([sys.executable, "-m", "taskq", "worker", "--id", f"b{i}", "-c", "4"],
                               env=settings_env(s), stdout=fh))
    store = Store(s)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len([w for w in store.workers() if w.status == "alive" and w.partitions]) == workers:
                break
            time.sleep(0.2)
        client = Client(s, store=store)
        t0 = time.monotonic()
        if bulk:
            for start in range(0, tasks, 500):
                client.submit_many([TaskRequest("add", (i, 1)) for i in range(start, min(tasks, start + 500))])
        else:
            for i in range(tasks):
                client.submit("add", i, 1)
        t_sub = time.monotonic()
        while time.monotonic() < t_sub + 600:
            c = store.counts()
            if c["success"] + c["failed"] >= tasks:
                break
            time.sleep(0.01)
        t_end = time.monotonic()
        finished = store.counts()["success"]
        client.producer.close()
        return {"system": "taskq", "bulk": bulk, "supported": True, "tasks": tasks, "finished": finished,
                "enqueue_per_s": tasks / (t_sub - t0), "end_to_end_per_s": finished / (t_end - t0),
                "seconds": t_end - t0}
    finally:
        for p in procs:
            stop_process(p, timeout=30)


def peer_run(system: str, redis: RedisServer, *, tasks: int, workers: int, bulk: bool) -> dict[str, Any]:
    py = ROOT / "bench" / ".peers" / system / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"{py} missing: run 'make bench' (it installs the peers)")
    url = f"redis://127.0.0.1:{redis.port}/{DB[system]}"
    out = subprocess.run([str(py), "-m", "bench.peer_bench", "--system", system, "--redis-url", url,
                          "--tasks", str(tasks), "--workers", str(workers), *(["--bulk"] if bulk else [])],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{system} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict[str, Any]], field: str) -> dict[str, float]:
    values = [r[field] for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--systems", default="taskq," + ",".join(PEERS))
    args = ap.parse_args()
    systems = args.systems.split(",")
    root = Path(tempfile.mkdtemp(prefix="taskq-bench-services-"))
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
    redis.start()
    kafka.start()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for rep in range(args.reps):
            for system in systems:  # interleaved so machine noise hits everyone alike
                for bulk in (False, True):
                    if system == "taskq":
                        r = taskq_run(kafka, redis, tasks=args.tasks, workers=args.workers, bulk=bulk)
                    else:
                        r = peer_run(system, redis, tasks=args.tasks, workers=args.workers, bulk=bulk)
                    if r.get("supported"):
                        results.setdefault(system, {}).setdefault("bulk" if bulk else "single", []).append(r)
                        print(f"rep {rep + 1} {system:<9} {'bulk  ' if bulk else 'single'} "
                              f"enqueue {r['enqueue_per_s']:8.0f}/s  end-to-end {r['end_to_end_per_s']:8.0f}/s "
                              f"({r['finished']}/{r['tasks']})", flush=True)
    finally:
        kafka.stop()
        redis.stop()
    table = []
    for system, modes in results.items():
        for mode, runs in modes.items():
            table.append({"system": system, "mode": mode, "enqueue_per_s": summarize(runs, "enqueue_per_s"),
                          "end_to_end_per_s": summarize(runs, "end_to_end_per_s"), "runs": runs})
    base = {(t["system"], t["mode"]): t["end_to_end_per_s"]["median"] for t in table}
    print(f"\nthroughput, {args.tasks} add tasks, {args.workers} worker processes, median of {args.reps} "
          "(min-max); ratio = taskq / peer, same submit mode")
    print(f"{'system':<10}{'mode':<8}{'enqueue/s':>12}{'end-to-end/s':>16}{'range':>18}{'taskq/peer':>12}")
    for t in table:
        e2e = t["end_to_end_per_s"]
        tq = base.get(("taskq", t["mode"]))
        ratio = f"{tq / e2e['median']:.2f}" if tq and t["system"] != "taskq" else "-"
        print(f"{t['system']:<10}{t['mode']:<8}{t['enqueue_per_s']['median']:>12.0f}{e2e['median']:>16.0f}"
              f"{e2e['min']:>9.0f}-{e2e['max']:<8.0f}{ratio:>12}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"tasks": args.tasks, "reps": args.reps, "workers": args.workers,
                                "machine": {"cores": __import__("os").cpu_count()}, "table": table}, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
