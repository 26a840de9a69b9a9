from bench.peers import common


def add(a: int, b: int) -> int:
    return common.add(a, b)


def stamp(submitted_at: float) -> float:
    return common.stamp(submitted_at)


def nap(i: int, seconds: float) -> int:
    return common.nap(i, seconds)
