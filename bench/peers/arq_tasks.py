import asyncio
import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from bench.peers import common
from bench.peers.common import REDIS_URL


async def add(ctx: dict[str, Any], a: int, b: int) -> int:
    return common.add(a, b)


async def stamp(ctx: dict[str, Any], submitted_at: float) -> float:
    return common.stamp(submitted_at)


async def nap(ctx: dict[str, Any], i: int, seconds: float) -> int:
    common.nap_start(i)
    await asyncio.sleep(seconds)
    common.nap_end(i)
    return i


class WorkerSettings:
    functions: ClassVar[list[Any]] = [add, stamp, nap]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = int(os.environ.get("BENCH_SLOTS", "4"))
    keep_result = 3600
