import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from bench.peers import common
from bench.peers.common import REDIS_URL

broker = RedisBroker(url=REDIS_URL)
broker.add_middleware(Results(backend=RedisBackend(url=REDIS_URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def add(a: int, b: int) -> int:
    return common.add(a, b)


@dramatiq.actor(store_results=True, max_retries=0)
def stamp(submitted_at: float) -> float:
    return common.stamp(submitted_at)


@dramatiq.actor(store_results=True, max_retries=0, time_limit=3_600_000)
def nap(i: int, seconds: float) -> int:
    return common.nap(i, seconds)
