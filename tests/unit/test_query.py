"""Pure parts of listings and the bulk CLI: filters, cursors, durations and times (no services)."""

from __future__ import annotations

import time

import pytest
import typer

from taskq.cli_tasks import parse_duration, parse_time
from taskq.errors import InvalidTask
from taskq.models import TaskState
from taskq.query import Entry, TaskFilter, decode_cursor, encode_cursor


def test_a_cursor_round_trips_its_position_and_direction() -> None:
    e = Entry("abc-1", 1764324705.469123, "k")
    assert decode_cursor(encode_cursor(e)) == ((1764324705.469123, "abc-1"), False)
    assert decode_cursor(encode_cursor(e, back=True)) == ((1764324705.469123, "abc-1"), True)
    assert decode_cursor(None) == (None, False)
    assert decode_cursor("5.0:id:with:colons") == ((5.0, "id:with:colons"), False)


def test_a_filter_drops_empty_fields_and_reads_a_status_name() -> None:
    f = TaskFilter(status="dead", task="", q="", worker="w1")  # type: ignore[arg-type]
    assert f.status is TaskState.DEAD and f.task is None and f.q is None
    assert f.to_dict() == {"status": "dead", "worker": "w1"} and not f.is_empty and TaskFilter().is_empty
    with pytest.raises(InvalidTask, match="since must be a time"):
        TaskFilter(since=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900), ("12h", 43200),
                                               ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)])
def test_durations_take_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text, "--older-than") == seconds


def test_times_are_epoch_seconds_a_duration_ago_or_iso() -> None:
    assert parse_time("1700000000", "--since") == 1_700_000_000
    assert abs(parse_time("2h", "--since") - (time.time() - 7200)) < 5  # type: ignore[operator]
    assert parse_time("2026-12-01T08:00:00+00:00", "--since") == 1_796_112_000
    assert parse_time(None, "--since") is None
    with pytest.raises(typer.Exit) as exc:
        parse_time("yesterday", "--since")
    assert exc.value.exit_code == 2
