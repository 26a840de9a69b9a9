import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from bench.peers.common import REDIS_URL, done

broker = RedisBroker(url=REDIS_URL)
broker.add_middleware(Results(backend=RedisBackend(url=REDIS_URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def add(a: int, b: int, submitted_at: float | None = None) -> int:
    done("dramatiq", submitted_at)
    return a + b


@dramatiq.actor(store_results=True, max_retries=0, time_limit=3_600_000)
def sleep(seconds: float, submitted_at: float | None = None) -> float:
    time.sleep(seconds)
    done("dramatiq", submitted_at)
    return seconds
