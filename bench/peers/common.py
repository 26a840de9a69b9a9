"""Shared by every peer's task module: where the benchmark Redis is, and a per-process client."""

from __future__ import annotations

import os
import time

import redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    return _client


def done(kind: str, submitted_at: float | None = None) -> None:
    """Count a finished task and, for latency runs, record submit->done in ms."""
    pipe = client().pipeline(transaction=False)
    pipe.incr(f"bench:{kind}:done")
    if submitted_at:
        pipe.rpush(f"bench:{kind}:lat", f"{(time.time() - submitted_at) * 1000:.3f}")
    pipe.execute()
