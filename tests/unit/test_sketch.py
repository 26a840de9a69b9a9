"""Percentiles from the run-time sketch are within its stated relative error, whatever the data."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from taskq import sketch


def _true(values: list[float], q: float) -> float:
    return sorted(values)[math.floor(q * (len(values) - 1))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=1e-5, max_value=7 * 86400, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]))
def test_every_quantile_is_within_the_relative_error_of_the_true_order_statistic(values: list[float],
                                                                                   q: float) -> None:
    counts = Counter(sketch.bucket(v) for v in values)
    (got,) = sketch.quantiles(counts, (q,))
    want = _true(values, q)
    assert got is not None
    assert abs(got - want) <= sketch.RELATIVE_ERROR * want * (1 + 1e-9), (got, want)


def test_the_issues_example_is_read_back_as_measured_not_as_bucket_edges() -> None:
    """24 sleeps of 4 s and 5 s once read p50/p95/p99 = 5.00 / 9.50 / 9.90 s from fixed buckets."""
    values = [4.0] * 12 + [5.0] * 12
    p50, p95, p99 = sketch.quantiles(Counter(sketch.bucket(v) for v in values), (0.5, 0.95, 0.99))
    assert p50 is not None and abs(p50 - 4.0) <= 0.08
    assert p95 is not None and p99 is not None and abs(p95 - 5.0) <= 0.1 and abs(p99 - 5.0) <= 0.1


def test_nothing_counted_reads_as_no_value_and_tiny_durations_as_zero() -> None:
    assert sketch.quantiles({}, (0.5, 0.99)) == (None, None)
    assert sketch.bucket(0.0) == sketch.bucket(float("nan")) == sketch.ZERO
    assert sketch.quantiles({sketch.ZERO: 3}, (0.5,)) == (0.0,)


def test_fields_that_are_no_bucket_are_skipped_not_fatal() -> None:
    """The counts come from a Redis hash anyone with access can write: a damaged field must not
    turn the metrics page into a 500."""
    counts = {sketch.bucket(1.0): 3, "x7": 5, "": 1, "1e9": 2}
    assert sketch.quantiles(counts, (0.5,)) == sketch.quantiles({sketch.bucket(1.0): 3}, (0.5,))
