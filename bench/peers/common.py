"""Task bodies shared by every system's task module, so all of them do exactly the same work.

Each system gets its own Redis database for these bench keys (``BENCH_REDIS_URL``):
- ``done``: count of finished ``add`` tasks (throughput);
- ``lat:start`` / ``lat:done``: submit->start and submit->return in ms of ``stamp`` tasks (latency, HOL);
- ``runs:<i>`` / ``end:<i>``: which worker (process group) started and finished ``nap`` task i (recovery).
"""

from __future__ import annotations

import os
import time

import redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
_client: redis.Redis | None = None
_pid = 0


def client() -> redis.Redis:
    global _client, _pid
    if _client is None or _pid != os.getpid():  # one connection per (forked) process
        _client = redis.Redis.from_url(REDIS_URL)
        _pid = os.getpid()
    return _client


def add(a: int, b: int) -> int:
    client().incr("done")
    return a + b


def stamp_start(submitted_at: float) -> float:
    now = time.time()
    client().rpush("lat:start", f"{(now - submitted_at) * 1000:.3f}")
    return now


def stamp_done(submitted_at: float) -> None:
    client().rpush("lat:done", f"{(time.time() - submitted_at) * 1000:.3f}")


def stamp(submitted_at: float) -> float:
    started = stamp_start(submitted_at)
    stamp_done(submitted_at)
    return started


def nap_start(i: int) -> None:
    client().rpush(f"runs:{i}", f"{os.getpgid(0)} {time.time():.6f}")


def nap_end(i: int) -> None:
    client().set(f"end:{i}", f"{os.getpgid(0)} {time.time():.6f}")


def nap(i: int, seconds: float) -> int:
    nap_start(i)
    time.sleep(seconds)
    nap_end(i)
    return i
