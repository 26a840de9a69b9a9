"""Durations kept as a log-bucketed sketch (DDSketch's mapping), so percentiles carry a stated error.

A duration ``x`` falls in bucket ``ceil(log(x) / log(GAMMA))``; every value in bucket ``k`` lies in
``(GAMMA**(k-1), GAMMA**k]`` and the bucket is read back as ``2 * GAMMA**k / (GAMMA + 1)``, which is
within ``RELATIVE_ERROR`` of each of them. A percentile read from the buckets is therefore within
``RELATIVE_ERROR`` of the true order statistic (Masson, Rim, Lee: "DDSketch", VLDB 2019), whatever
the distribution — unlike fixed histogram buckets, whose error is the bucket's width (a run time
between 5 s and 10 s read as anything in between). The workers' Lua (``lua.TYPE_STATS``) writes the
bucket counts; this module is the one place that knows the mapping, for Lua and for the readers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

RELATIVE_ERROR = 0.02
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
# Below this (a microsecond) a duration counts as zero: the clocks measure nothing finer.
MIN_SECONDS = 1e-6
ZERO = "z"  # the bucket of durations below MIN_SECONDS


def bucket(seconds: float) -> str:
    """The bucket a duration falls in (the same as the Lua's ``sketch_of``)."""
    if not seconds >= MIN_SECONDS:  # also NaN
        return ZERO
    return str(math.ceil(math.log(seconds) / math.log(GAMMA)))


def value(key: str) -> float:
    """What a bucket is read back as: within RELATIVE_ERROR of every duration in it."""
    if key == ZERO:
        return 0.0
    return 2 * GAMMA ** int(key) / (GAMMA + 1)


def _index(key: str) -> float | None:
    """A bucket's place in order; None for a field that is no bucket (a damaged hash is skipped)."""
    if key == ZERO:
        return -math.inf
    try:
        return int(key)
    except ValueError:
        return None


def quantiles(counts: Mapping[str, float], qs: tuple[float, ...]) -> tuple[float | None, ...]:
    """The ``qs`` quantiles (0..1) of the counted durations; None each when nothing was counted.

    The q-quantile is the order statistic of rank ``floor(q * (n - 1))`` (0-based), as DDSketch's
    guarantee states it."""
    order = sorted((_index(k), k, c) for k, c in counts.items() if c > 0 and _index(k) is not None)
    n = sum(c for _, _, c in order)
    if not n:
        return tuple(None for _ in qs)
    out: list[float | None] = []
    for q in qs:
        rank, seen = math.floor(q * (n - 1)), 0.0
        chosen = order[-1][1]
        for _, key, c in order:
            seen += c
            if seen > rank:
                chosen = key
                break
        out.append(round(value(chosen), 6))
    return tuple(out)


def into_lua(source: str) -> str:
    """Lua source with the mapping's constants put in (``lua.TYPE_STATS``)."""
    return source.replace("@SKETCH_LN_GAMMA@", repr(math.log(GAMMA))).replace("@SKETCH_MIN@", repr(MIN_SECONDS))
