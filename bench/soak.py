"""``make soak``: a steady load for an hour with a worker restart every 10 minutes (not in make test).

Starts its own Kafka and Redis (devstack), one ``taskq api`` and three workers, and submits ``add``
tasks through the API at ``--rate`` per second (raw HTTP/1.1 keep-alive, see ``bench.api_load``).
Every ``--restart-every`` seconds one worker (in turn) gets SIGTERM and is started again. Each
minute it samples RSS, open file descriptors and threads of the API and every worker, and Redis'
used memory; at the end it reports them at start and end, and the p99 wait (submit -> start, from
the task records, read a minute after submission while within their TTL) per ``--window``.
Target: flat memory and fds (growth only by records within
their TTL) and a stable p99. Successful records keep ``--result-ttl-success`` seconds (10 min by
default), so Redis' memory levels off once the first ones expire instead of growing all hour; a
sample is taken only once a restarted worker is back (registered again). Results: the terminal
and ``bench/results/soak-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.api_load import RawConnection
from bench.scenarios import pct
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.settings import Settings
from taskq.store import Store

ROOT = Path(__file__).resolve().parents[1]


def proc_stats(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def submit_at(url: str, rate: float, seconds: float, ids: list[str]) -> dict[int, int]:
    host, port = url.removeprefix("http://").split(":")
    conns = [RawConnection(host, int(port)) for _ in range(8)]
    codes: dict[int, int] = {}
    start = time.monotonic()
    sent = 0

    async def one(conn: RawConnection, n: int) -> None:
        code, body = await conn.post_json("/api/tasks", json.dumps({"task": "add", "args": [n, 1]}).encode())
        codes[code] = codes.get(code, 0) + 1
        if code == 202:
            ids.append(json.loads(body)["id"])

    while (now := time.monotonic() - start) < seconds:
        due = int(now * rate)
        batch = []
        while sent < due:
            batch.append(one(conns[sent % len(conns)], sent))
            sent += 1
            if len(batch) == len(conns):
                await asyncio.gather(*batch)
                batch = []
        if batch:
            await asyncio.gather(*batch)
        await asyncio.sleep(0.005)
    for c in conns:
        await c.close()
    return codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--restart-every", type=float, default=600)
    ap.add_argument("--window", type=float, default=300)
    ap.add_argument("--result-ttl-success", type=float, default=600,
                    help="seconds a successful record is kept (TASKQ_RESULT_TTL_SUCCESS)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taskq-soak-"))
    rds = RedisServer(data_dir=root / "redis", port=free_port())
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
    rds.start()
    kafka.start()
    settings = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=rds.url, kafka_client="confluent",
                        result_ttl_success=args.result_ttl_success)
    ensure_topics(settings)
    from tests.helpers import settings_env

    env = settings_env(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start(argv: list[str], name: str) -> Any:
        with open(root / f"{name}.log", "ab") as fh:
            return spawn([sys.executable, "-m", "taskq", *argv], env=env, stdout=fh)

    api = start(["api", "--port", str(port)], "api")
    workers = [start(["worker", "--id", f"w{i}"], f"w{i}") for i in range(3)]
    samples: list[dict[str, Any]] = []
    ids: list[str] = []
    r = redis.Redis.from_url(rds.url)
    try:
        def wait_for_workers(ids: set[str], since: float = 0.0) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    alive = {w["id"] for w in httpx.get(f"{url}/api/workers", timeout=2).json()
                             if w["status"] == "alive" and (w.get("started_at") or 0) >= since}
                    if ids <= alive:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            raise SystemExit(f"workers {sorted(ids)} did not register within 60 s")

        wait_for_workers({f"w{i}" for i in range(3)})
        total = args.minutes * 60
        began, began_wall = time.monotonic(), time.time()
        codes: dict[int, int] = {}
        store = Store(settings)
        windows: dict[int, list[float]] = {}
        statuses: dict[str, int] = {}
        missing = [0]
        checked = [0]

        def check(batch: list[str]) -> None:
            """Read the records of a minute's tasks while they are within their TTL: waits, outcomes."""
            for x in store.get_many(batch):
                checked[0] += 1
                if x is None:
                    missing[0] += 1
                    continue
                statuses[x.status.value] = statuses.get(x.status.value, 0) + 1
                if x.started_at and x.created_at:
                    windows.setdefault(int((x.created_at - began_wall) // args.window), []).append(
                        x.started_at - x.created_at)

        previous: list[str] = []
        next_restart, turn = args.restart_every, 0
        while (elapsed := time.monotonic() - began) < total:
            sample = {"t": round(elapsed), "redis_used_memory": int(r.info("memory")["used_memory"]),
                      "api": proc_stats(api.pid), "workers": [proc_stats(w.pid) for w in workers]}
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            step = min(60.0, total - elapsed, max(1.0, next_restart - elapsed))
            fresh: list[str] = []
            for k, v in asyncio.run(submit_at(url, args.rate, step, fresh)).items():
                codes[k] = codes.get(k, 0) + v
            ids.extend(fresh)
            check(previous)  # submitted a minute or more ago: finished unless something is wrong
            previous = fresh
            if time.monotonic() - began >= next_restart:
                i = turn % len(workers)
                workers[i].send_signal(signal.SIGTERM)
                workers[i].wait(timeout=60)
                restarted, restarted_at = time.monotonic(), time.time()
                workers[i] = start(["worker", "--id", f"w{i}"], f"w{i}")
                wait_for_workers({f"w{i}"}, since=restarted_at - 1)
                print(json.dumps({"restarted": f"w{i}", "back_after_s": round(time.monotonic() - restarted, 1)}),
                      flush=True)
                turn += 1
                next_restart += args.restart_every
        time.sleep(5)
        check(previous)
        store.close()
        p99 = {f"{int(k * args.window)}s": round((pct(v, 99) or 0) * 1000, 1) for k, v in sorted(windows.items())}
        unfinished = sum(n for st, n in statuses.items() if st not in ("success", "failed", "dead", "cancelled"))
        report = {"args": vars(args), "codes": codes, "submitted": len(ids), "unfinished": unfinished,
                  "checked": checked[0], "missing": missing[0], "statuses": statuses,
                  "p99_wait_ms_per_window": p99, "first": samples[0], "last": samples[-1], "samples": samples}
        out = ROOT / "bench" / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
        print(f"wrote {out}")
    finally:
        r.close()
        for p in [api, *workers]:
            stop_process(p, timeout=20)
        kafka.stop()
        rds.stop()


if __name__ == "__main__":
    main()
