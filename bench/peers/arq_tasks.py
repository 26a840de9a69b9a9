import asyncio

from arq.connections import RedisSettings

from bench.peers.common import REDIS_URL, done


async def add(ctx: dict, a: int, b: int, submitted_at: float | None = None) -> int:
    done("arq", submitted_at)
    return a + b


async def sleep(ctx: dict, seconds: float, submitted_at: float | None = None) -> float:
    await asyncio.sleep(seconds)
    done("arq", submitted_at)
    return seconds


class WorkerSettings:
    functions = [add, sleep]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = 10
    keep_result = 3600
