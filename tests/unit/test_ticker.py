"""The tick loop's turn with an in-memory schedule store: what it claims, what it skips, and one
log line per outage. The claim script itself runs against Redis in tests/integration/test_schedules.py."""

from __future__ import annotations

import logging

import pytest

from taskq.errors import InvalidTask, StoreUnavailable
from taskq.schedules import Plan, Schedule
from taskq.worker.ticker import Ticker

NOW = 1_800_000_000_000


class FakeSchedules:
    """The part of ScheduleStore the ticker uses."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[Schedule, int] | None] = {}
        self.broken: set[str] = set()
        self.claims: list[tuple[str, Plan]] = []
        self.lose: set[str] = set()  # claims another worker wins
        self.declared: list[str] = []
        self.down = False

    def declare(self, schedule: Schedule, *, now: int) -> str:
        if self.down:
            raise StoreUnavailable("Redis is unreachable")
        self.declared.append(schedule.name)
        return "created"

    def due(self, now: int) -> list[str]:
        if self.down:
            raise StoreUnavailable("Redis is unreachable")
        return sorted({*self.stored, *self.broken})

    def load(self, name: str) -> tuple[Schedule, int] | None:
        if name in self.broken:
            raise InvalidTask(f"schedule {name!r}: unreadable")
        return self.stored[name]

    def claim(self, schedule: Schedule, next_at: int, p: Plan, *, now: int) -> int | None:
        if schedule.name in self.lose:
            return None
        self.claims.append((schedule.name, p))
        return len(p.ticks)


@pytest.fixture
def fake() -> FakeSchedules:
    return FakeSchedules()


def ticker(fake: FakeSchedules, declared: list[Schedule] | None = None) -> Ticker:
    return Ticker(schedules=fake, declared=declared or [], log=logging.getLogger("test.ticker"),  # type: ignore[arg-type]
                  clock=lambda: NOW)


def test_a_turn_claims_the_due_schedules_and_leaves_the_rest(fake: FakeSchedules) -> None:
    fake.stored["due"] = (Schedule("due", "add", every=1), NOW - 1000)
    fake.stored["later"] = (Schedule("later", "add", every=60), NOW + 5000)
    fake.stored["paused"] = None
    assert ticker(fake).tick() == 2
    assert [(n, p.ticks) for n, p in fake.claims] == [("due", [NOW - 1000, NOW])]


def test_a_claim_another_worker_won_creates_nothing_here(fake: FakeSchedules) -> None:
    fake.stored["raced"] = (Schedule("raced", "add", every=1), NOW)
    fake.lose.add("raced")
    assert ticker(fake).tick() == 0


def test_a_schedule_that_no_longer_loads_is_skipped_with_one_warning(
    fake: FakeSchedules, caplog: pytest.LogCaptureFixture
) -> None:
    fake.broken.add("old")
    fake.stored["ok"] = (Schedule("ok", "add", every=1), NOW)
    t = ticker(fake)
    assert t.tick() == 1 and t.tick() == 1
    assert [r.message for r in caplog.records].count(
        "schedule old is skipped: its stored definition is invalid: schedule 'old': unreadable") == 1


def test_an_outage_is_logged_once_and_code_schedules_are_declared_when_redis_is_back(
    fake: FakeSchedules, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake.down = True
    t = ticker(fake, [Schedule("hourly", "add", every=3600)])
    assert t.tick() == 0 and t.tick() == 0
    fake.down = False
    t.tick()
    messages = [r.message for r in caplog.records]
    assert messages == ["schedules paused: Redis is unreachable", "schedules declared: hourly created",
                        "schedules resumed"]
    assert fake.declared == ["hourly"]
