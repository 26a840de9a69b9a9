import time

from bench.peers.common import done


def add(a: int, b: int, submitted_at: float | None = None) -> int:
    done("rq", submitted_at)
    return a + b


def sleep(seconds: float, submitted_at: float | None = None) -> float:
    time.sleep(seconds)
    done("rq", submitted_at)
    return seconds
