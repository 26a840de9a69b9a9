"""The Schedules tab in real headless Chromium: next and last run, the last outcome, and the
pause / resume / run-now buttons, against the real stack."""

from __future__ import annotations

from taskq.client import Client
from tests.helpers import WorkerFactory
from tests.ui.conftest import DOCS


def test_the_schedules_tab_lists_schedules_and_pauses_resumes_and_runs_them(
    page: tuple, start_worker: WorkerFactory, client: Client  # type: ignore[type-arg]
) -> None:
    from playwright.sync_api import expect

    pg, api = page
    start_worker("worker1")
    client.add_schedule("nightly-sum", "add", args=[20, 22], cron="0 3 * * *", timezone="Europe/Berlin")
    client.add_schedule("often", "add", args=[1, 1], every=3600)
    pg.goto(f"{api.url}/#/schedules")
    row = pg.locator("#schedule-table tr[data-schedule=nightly-sum]")
    expect(row).to_contain_text("0 3 * * * (Europe/Berlin)")
    expect(row.locator("[data-field=next]")).to_contain_text("in ")
    expect(row.locator("[data-field=outcome]")).to_have_text("\u2013")  # no run yet
    expect(pg.locator("#schedule-table tbody tr")).to_have_count(2)

    row.get_by_role("button", name="Pause").click()
    expect(row.locator("[data-field=next]")).to_have_text("paused")
    assert client.schedule("nightly-sum").paused
    row.get_by_role("button", name="Resume").click()
    expect(row.locator("[data-field=next]")).to_contain_text("in ")

    row.get_by_role("button", name="Run now").click()
    expect(row.locator("[data-field=outcome]")).to_have_text("success", timeout=30_000)
    expect(row.locator("[data-field=last]")).to_contain_text("ago")
    info = client.schedule("nightly-sum")
    assert info.last_task_id is not None and client.get(info.last_task_id).result == 42
    pg.screenshot(path=str(DOCS / "ui-schedules.png"), full_page=True)
