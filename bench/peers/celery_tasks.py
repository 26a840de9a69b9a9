import os

from celery import Celery

from bench.peers import common
from bench.peers.common import REDIS_URL

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
# Celery's documented settings for not losing tasks: ack after running, reject on a lost worker,
# prefetch one at a time. Its Redis transport redelivers unacked messages after visibility_timeout.
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_reject_on_worker_lost=True,
                broker_connection_retry_on_startup=True, result_expires=3600,
                broker_transport_options={"visibility_timeout": int(os.environ.get("BENCH_VISIBILITY", "3600"))})


@app.task(name="add")
def add(a: int, b: int) -> int:
    return common.add(a, b)


@app.task(name="stamp")
def stamp(submitted_at: float) -> float:
    return common.stamp(submitted_at)


@app.task(name="nap")
def nap(i: int, seconds: float) -> int:
    return common.nap(i, seconds)
