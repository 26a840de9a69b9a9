"""Schedules as pure logic: validation messages, tick computation (intervals, cron, DST), the
missed-tick policy and code-declared schedules. No Redis: the claim itself is tested in
tests/integration/test_schedules.py."""

from __future__ import annotations

import itertools
import types
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from taskq.errors import ConfigError, InvalidTask
from taskq.registry import Registry, task
from taskq.schedules import COUNT_MAX, Schedule, every, plan, tick_task_id


def ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def utc(*args: int) -> int:
    return ms(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


@pytest.mark.parametrize(("fields", "message"), [
    ({"cron": "61 * * * *"}, "cron expression '61 * * * *' is invalid"),
    ({"cron": "* * * *"}, "must have 5 fields"),
    ({"cron": "*/5 * * * * *"}, "must have 5 fields"),
    ({"cron": "not a cron"}, "must have 5 fields"),
    ({"cron": "a b c d e"}, "is invalid"),
    ({"cron": "0 0 31 2 *"}, "never matches a date"),
    ({"every": 0}, "every must be a number of seconds above 0"),
    ({"every": -5}, "every must be a number of seconds above 0"),
    ({"every": float("nan")}, "every must be a number of seconds above 0"),
    ({"every": 0.01}, "every must be from 0.1"),
    ({}, "give exactly one of cron"),
    ({"cron": "* * * * *", "every": 10}, "give exactly one of cron"),
    ({"every": 10, "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"every": 10, "timezone": "../../etc/passwd"}, "unknown timezone"),
    ({"every": 10, "missed": "sometimes"}, "missed must be 'skip' or 'catchup'"),
    ({"every": 10, "missed": "catchup"}, "missed='catchup' needs catchup=N"),
    ({"every": 10, "catchup": 3}, "catchup=3 needs missed='catchup'"),
    ({"every": 10, "misfire_grace": -1}, "misfire_grace must be from 0"),
    ({"every": 10, "max_retries": -1}, "max_retries must be an integer"),
    ({"every": 10, "args": [float("inf")]}, "not a number JSON can carry"),
])
def test_an_invalid_schedule_is_refused_with_what_is_wrong(fields: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidTask) as exc:
        Schedule("s1", "add", **fields)
    assert message in str(exc.value)
    assert "schedule 's1'" in str(exc.value)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 129, "-lead"])
def test_a_bad_schedule_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidTask, match="schedule name"):
        Schedule(name, "add", every=1)


def test_a_bad_task_name_is_refused() -> None:
    with pytest.raises(InvalidTask, match="task name"):
        Schedule("s", "no spaces please", every=1)


def test_cron_text_is_normalised_and_aliases_are_accepted() -> None:
    assert Schedule("s", "add", cron="  */5   * * * * ").cron == "*/5 * * * *"
    assert Schedule("s", "add", cron="@hourly").next_after(utc(2026, 1, 1, 0, 30)) == utc(2026, 1, 1, 1, 0)


def test_every_ticks_fall_on_multiples_of_the_interval_since_the_epoch() -> None:
    s = Schedule("s", "add", every=10)
    assert s.next_after(utc(2026, 1, 1, 0, 0, 3)) == utc(2026, 1, 1, 0, 0, 10)
    assert s.next_after(utc(2026, 1, 1, 0, 0, 10)) == utc(2026, 1, 1, 0, 0, 20)  # strictly after
    assert list(s.ticks_back(utc(2026, 1, 1, 0, 0, 35), utc(2026, 1, 1, 0, 0, 10))) == [
        utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 10)]
    assert every(minutes=1, seconds=30).seconds == 90


def test_cron_ticks_follow_the_timezone() -> None:
    s = Schedule("s", "add", cron="0 3 * * *", timezone="Europe/Berlin")
    assert s.next_after(utc(2026, 1, 10, 12)) == utc(2026, 1, 11, 2)  # 03:00 CET is 02:00 UTC
    assert s.next_after(utc(2026, 7, 10, 12)) == utc(2026, 7, 11, 1)  # 03:00 CEST is 01:00 UTC


def test_a_cron_time_skipped_by_spring_forward_fires_once_after_the_gap() -> None:
    s = Schedule("s", "add", cron="30 2 * * *", timezone="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    first = s.next_after(ms(datetime(2026, 3, 29, 0, 0, tzinfo=berlin)))
    assert first == ms(datetime(2026, 3, 29, 3, 0, tzinfo=berlin))  # 02:30 does not exist that night
    assert s.next_after(first) == ms(datetime(2026, 3, 30, 2, 30, tzinfo=berlin))


def test_a_fixed_hour_cron_fires_once_in_the_repeated_hour_of_fall_back() -> None:
    ny = ZoneInfo("America/New_York")
    s = Schedule("s", "add", cron="30 1 * * *", timezone="America/New_York")
    first = s.next_after(ms(datetime(2026, 11, 1, 0, 0, tzinfo=ny)))
    assert first == ms(datetime(2026, 11, 1, 1, 30, tzinfo=ny))  # the first (EDT) pass
    assert s.next_after(first) == ms(datetime(2026, 11, 2, 1, 30, tzinfo=ny))  # not the EST pass an hour later
    back = list(s.ticks_back(ms(datetime(2026, 11, 2, 12, 0, tzinfo=ny)), first))
    assert back == [ms(datetime(2026, 11, 2, 1, 30, tzinfo=ny)), first]


def test_an_hourly_wildcard_cron_fires_at_every_real_half_hour_across_fall_back() -> None:
    ny = ZoneInfo("America/New_York")
    s = Schedule("s", "add", cron="*/30 * * * *", timezone="America/New_York")
    t = ms(datetime(2026, 11, 1, 0, 45, tzinfo=ny))
    ticks = []
    for _ in range(5):
        t = s.next_after(t)
        ticks.append(t)
    assert [b - a for a, b in itertools.pairwise(ticks)] == [30 * 60_000] * 4


def test_ticks_within_the_grace_are_all_enqueued() -> None:
    s = Schedule("s", "add", every=1, misfire_grace=5)
    now = utc(2026, 1, 1, 0, 0, 10) + 300
    p = plan(s, utc(2026, 1, 1, 0, 0, 8), now)
    assert p is not None
    assert p.ticks == [utc(2026, 1, 1, 0, 0, 8), utc(2026, 1, 1, 0, 0, 9), utc(2026, 1, 1, 0, 0, 10)]
    assert p.dropped == 0 and p.following == utc(2026, 1, 1, 0, 0, 11)


def test_a_schedule_not_due_yet_has_no_plan() -> None:
    s = Schedule("s", "add", every=1)
    assert plan(s, utc(2026, 1, 1, 0, 0, 11), utc(2026, 1, 1, 0, 0, 10)) is None


def test_skip_drops_every_tick_older_than_the_grace() -> None:
    s = Schedule("s", "add", every=1, misfire_grace=2)
    now = utc(2026, 1, 1, 1, 0, 0)
    p = plan(s, now - 3600_000, now)  # an hour of outage
    assert p is not None
    assert p.ticks == [now - 2000, now - 1000, now]
    assert p.dropped == 3600 - 2  # the 3601 ticks from next_at to now, less the three in the grace
    assert p.following == now + 1000


def test_catchup_enqueues_at_most_the_n_most_recent_missed_ticks() -> None:
    s = Schedule("s", "add", every=60, misfire_grace=1, missed="catchup", catchup=2)
    now = utc(2026, 1, 1, 1, 0, 30)
    p = plan(s, utc(2026, 1, 1, 0, 0), now)
    assert p is not None
    assert p.ticks == [utc(2026, 1, 1, 0, 59), utc(2026, 1, 1, 1, 0)]
    assert p.dropped == 59


def test_catchup_of_fewer_missed_ticks_than_n_enqueues_them_all() -> None:
    s = Schedule("s", "add", cron="*/10 * * * *", misfire_grace=1, missed="catchup", catchup=5)
    now = utc(2026, 1, 1, 0, 25)
    p = plan(s, utc(2026, 1, 1, 0, 10), now)
    assert p is not None
    assert p.ticks == [utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 20)]
    assert p.dropped == 0 and p.following == utc(2026, 1, 1, 0, 30)


def test_cron_skip_counts_the_dropped_ticks() -> None:
    s = Schedule("s", "add", cron="* * * * *", misfire_grace=5)
    now = utc(2026, 1, 1, 2, 0, 3)
    p = plan(s, utc(2026, 1, 1, 1, 0), now)
    assert p is not None
    assert p.ticks == [utc(2026, 1, 1, 2, 0)]
    assert p.dropped == 60


def test_a_tick_task_id_is_the_same_for_every_worker_and_differs_per_tick() -> None:
    a = tick_task_id("nightly", 1_000)
    assert a == tick_task_id("nightly", 1_000) and len(a) == 32
    assert a != tick_task_id("nightly", 2_000) and a != tick_task_id("hourly", 1_000)


def test_the_version_changes_with_the_definition_but_not_with_pause_or_source() -> None:
    s = Schedule("s", "add", [1, 2], every=10)
    assert s.version() == Schedule("s", "add", [1, 2], every=10, paused=True, source="code").version()
    assert s.version() != Schedule("s", "add", [1, 3], every=10).version()
    assert s.version() != Schedule("s", "add", [1, 2], every=11).version()


def test_task_schedule_option_declares_a_code_schedule_named_after_the_task() -> None:
    @task(schedule="*/5 * * * *")
    def report() -> None: ...

    @task(name="poll", schedule=every(seconds=10))
    def poll_feeds() -> None: ...

    module = types.ModuleType("fake_tasks")
    module.report = report  # type: ignore[attr-defined]
    module.poll_feeds = poll_feeds  # type: ignore[attr-defined]
    module.schedules = [Schedule("nightly", "report", cron="0 3 * * *", timezone="Europe/Berlin")]  # type: ignore[attr-defined]
    reg = Registry()
    reg.add_module(module)
    by_name = {s.name: s for s in reg.schedules}
    assert sorted(by_name) == ["nightly", "poll", "report"]
    assert by_name["report"].cron == "*/5 * * * *" and by_name["report"].task == "report"
    assert by_name["poll"].every == 10.0 and by_name["poll"].source == "code"


def test_task_schedule_option_refuses_a_bad_cron_at_decoration() -> None:
    with pytest.raises(ConfigError, match=r"@task\('bad'\).*cron expression"):
        @task(schedule="every day")
        def bad() -> None: ...


def test_a_schedules_list_of_the_wrong_type_is_refused() -> None:
    module = types.ModuleType("fake_tasks")
    module.schedules = ["*/5 * * * *"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"must be a list of taskq\.Schedule"):
        Registry().add_module(module)


def test_an_outage_of_more_cron_ticks_than_the_count_limit_stops_counting_there() -> None:
    s = Schedule("s", "add", cron="* * * * *", misfire_grace=5)
    now = utc(2026, 1, 31, 0, 0, 2)
    p = plan(s, utc(2026, 1, 1, 0, 0), now)  # 30 days of minutes
    assert p is not None and p.ticks == [now - 2000] and p.dropped == COUNT_MAX


def test_an_empty_cron_is_refused() -> None:
    with pytest.raises(InvalidTask, match="cron must be a cron expression"):
        Schedule("s", "add", cron="  ")


def test_two_different_schedules_of_one_name_are_refused() -> None:
    reg = Registry()
    reg.add_schedule(Schedule("s", "add", every=5))
    reg.add_schedule(Schedule("s", "add", every=5, paused=True))  # the same definition: fine
    with pytest.raises(ConfigError, match="declared twice"):
        reg.add_schedule(Schedule("s", "add", every=6))


def test_task_schedule_option_must_be_cron_text_or_every() -> None:
    with pytest.raises(ConfigError, match="schedule must be a cron expression or every"):
        @task(schedule=10)  # type: ignore[call-overload]
        def numeric() -> None: ...


def test_a_leap_day_cron_is_accepted_and_fires_on_the_next_leap_day() -> None:
    s = Schedule("s", "add", cron="0 0 29 2 *")
    assert s.next_after(utc(2026, 3, 1)) == utc(2028, 2, 29)
