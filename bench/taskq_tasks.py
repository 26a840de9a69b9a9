"""taskq's versions of the benchmark tasks (the same bodies as every peer's, bench/peers/common.py)."""

from bench.peers import common
from taskq import task


@task(name="bench.add")
def add(a: int, b: int) -> int:
    return common.add(a, b)


@task(name="bench.stamp")
def stamp(submitted_at: float) -> float:
    return common.stamp(submitted_at)


@task(name="bench.nap")
def nap(i: int, seconds: float) -> int:
    return common.nap(i, seconds)
