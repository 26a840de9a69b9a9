"""``make bench-api``: the HTTP submit path at 1, 16, 64 and 256 concurrent clients, per Kafka client.

One run starts its own Kafka and Redis (devstack), then for each Kafka client an API process
(``taskq api``) and three workers, and drives ``POST /api/tasks`` (``add``) from an async httpx load
generator: each client loops submit → response for ``--seconds``. It reports submits/s and the
latency percentiles per concurrency, and ``/api/tasks/batch`` (500 per request) for the producer's
ceiling. Each step also reports the CPU milliseconds per accepted submit of the API, the
workers, Kafka, Redis and the load generator itself: on a 2-core machine their sum is the ceiling.
``--quiet-workers`` asks the workers to stop taking tasks first (``taskq quiet``), so the step
measures the API with Kafka and Redis alone. Results go to the terminal and
``bench/results/api-<stamp>.json``. Numbers are only compared within one run (the machine is
shared and noisy); nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.scenarios import cpu_split, pct
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator that costs far less
    CPU per request than httpx, so at high concurrency the numbers measure the API, not the driver."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        return (await self.post_json(path, body))[0]

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body``; the status and the response body."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def drive_raw(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """``drive`` with one ``RawConnection`` per client instead of httpx."""
    host, port = url.removeprefix("http://").split(":")
    lat: list[float] = []
    codes: dict[int, int] = {}
    stop = time.monotonic() + seconds

    async def one(n: int) -> None:
        conn = RawConnection(host, int(port))
        i = 0
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                code = await conn.post("/api/tasks", json.dumps({"task": "add", "args": [n, i]}).encode())
                lat.append((time.perf_counter() - t0) * 1000)
                codes[code] = codes.get(code, 0) + 1
                i += 1
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*[one(n) for n in range(clients)])
    elapsed = time.monotonic() - started
    return {"clients": clients, "batch": 0, "seconds": elapsed, "submits_per_s": codes.get(202, 0) / elapsed,
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "codes": codes, "driver": "raw"}


async def drive(url: str, clients: int, seconds: float, *, batch: int = 0) -> dict[str, Any]:
    """``clients`` loops posting until ``seconds`` passed; latency per request, status counts."""
    lat: list[float] = []
    codes: dict[int, int] = {}
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one(c: httpx.AsyncClient, n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            if batch:
                r = await c.post("/api/tasks/batch", json=[{"task": "add", "args": [n, j]} for j in range(batch)])
            else:
                r = await c.post("/api/tasks", json={"task": "add", "args": [n, i]})
            lat.append((time.perf_counter() - t0) * 1000)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            i += 1

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as c:
        await asyncio.gather(*[one(c, n) for n in range(clients)])
    elapsed = time.monotonic() - started
    ok = codes.get(202, 0) * (batch or 1)
    return {"clients": clients, "batch": batch, "seconds": elapsed, "submits_per_s": ok / elapsed,
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "codes": codes}


def run_client(kafka_client: str, args: argparse.Namespace, kafka: KafkaServer, redis: RedisServer,
               logdir: Path) -> list[dict[str, Any]]:
    uid = f"{kafka_client}-{int(time.time())}"
    settings = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url, tasks_topic=f"api-{uid}",
                        dead_topic=f"api-dead-{uid}", group_id=f"api-{uid}", prefix=f"api-{uid}:",
                        kafka_client=kafka_client)  # type: ignore[arg-type]
    ensure_topics(settings)
    from tests.helpers import settings_env

    env = settings_env(settings)
    port = free_port()
    procs = []
    try:
        with open(logdir / f"api-{kafka_client}.log", "ab") as fh:
            procs.append(spawn([sys.executable, "-m", "taskq", "api", "--port", str(port),
                                "--workers", str(args.api_workers)], env=env, stdout=fh))
        for w in range(3):
            with open(logdir / f"worker-{kafka_client}-{w}.log", "ab") as fh:
                procs.append(spawn([sys.executable, "-m", "taskq", "worker", "--id", f"w{w}"], env=env, stdout=fh))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/workers", timeout=2).json().__len__() >= 3:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        asyncio.run(drive(url, 8, 3.0))  # warm-up: JIT, connections, the producer's metadata
        if args.quiet_workers:
            for w in range(3):
                httpx.post(f"{url}/api/workers/w{w}/quiet", timeout=10).raise_for_status()
        servers = {"kafka": kafka.proc.pid if kafka.proc else 0, "redis": redis.proc.pid if redis.proc else 0}

        def measured(run: Any, extra: dict[str, Any]) -> dict[str, Any]:
            before = cpu_split([p.pid for p in procs[1:]], {"api": procs[0].pid, **servers})
            row = {**asyncio.run(run), **extra}
            after = cpu_split([p.pid for p in procs[1:]], {"api": procs[0].pid, **servers})
            accepted = max(1.0, row["submits_per_s"] * row["seconds"])
            row["cpu_ms_per_submit"] = {k: round((after[k] - before[k]) * 1000 / accepted, 3) for k in after}
            rows.append(row)
            print(json.dumps(row), flush=True)
            return row

        rows: list[dict[str, Any]] = []
        common = {"kafka_client": kafka_client, "api_workers": args.api_workers, "workers_quiet": args.quiet_workers}
        for clients in args.concurrency:
            for driver in args.drivers:
                run = drive_raw(url, clients, args.seconds) if driver == "raw" else drive(url, clients, args.seconds)
                measured(run, {"driver": driver, **common})
        measured(drive(url, 4, args.seconds, batch=500), common)
        return rows
    finally:
        for p in procs:
            stop_process(p, timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="confluent,kafka-python", help="Kafka clients to compare")
    ap.add_argument("--concurrency", default="1,16,64,256", type=lambda v: [int(x) for x in v.split(",")])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--api-workers", type=int, default=1, help="API processes (taskq api --workers)")
    ap.add_argument("--quiet-workers", action="store_true",
                    help="quiet the workers before measuring: the API, Kafka and Redis alone")
    ap.add_argument("--drivers", default="raw,httpx", type=lambda v: v.split(","),
                    help="load generators: raw (asyncio streams, cheap) and/or httpx")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taskq-bench-api-"))
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    # Full JIT, as in make bench (quick_start trades Kafka's CPU per request for a fast start).
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port(),
                        quick_start=False, heap="1g")
    redis.start()
    kafka.start()
    rows: list[dict[str, Any]] = []
    try:
        for kc in args.clients.split(","):
            rows.extend(run_client(kc, args, kafka, redis, root))
    finally:
        kafka.stop()
        redis.stop()
    print(f"\nAPI SUBMIT  POST /api/tasks (add), {args.seconds:g} s per step, 3 workers, "
          f"{args.api_workers} API process(es)")
    print(f"{'client':<14}{'driver':<8}{'concurrency':>12}{'submits/s':>12}{'p50 ms':>10}{'p99 ms':>10}"
          "  CPU ms/submit (api, workers, kafka, redis, driver)  statuses")
    for r in rows:
        what = f"batch {r['batch']}" if r["batch"] else str(r["clients"])
        cpu = r["cpu_ms_per_submit"]
        split = ", ".join(f"{cpu[k]:.2f}" for k in ("api", "workers", "kafka", "redis", "client"))
        print(f"{r['kafka_client']:<14}{r.get('driver', 'httpx'):<8}{what:>12}{r['submits_per_s']:>12.0f}"
              f"{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}  {split:<48}  {r['codes']}")
    out = ROOT / "bench" / "results" / f"api-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": os.uname().nodename, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
