from celery import Celery

from bench.peers.common import REDIS_URL, done

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
# Celery's documented settings for not losing tasks: ack after running, prefetch one at a time.
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_reject_on_worker_lost=True,
                broker_connection_retry_on_startup=True, result_expires=3600)


@app.task(name="add")
def add(a: int, b: int, submitted_at: float | None = None) -> int:
    done("celery", submitted_at)
    return a + b


@app.task(name="sleep")
def sleep(seconds: float, submitted_at: float | None = None) -> float:
    import time

    time.sleep(seconds)
    done("celery", submitted_at)
    return seconds
