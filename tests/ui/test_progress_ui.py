"""A running task's page follows its progress live and can ask it to stop, in Chromium."""

from __future__ import annotations

from taskq import Client
from tests.helpers import WorkerFactory, wait_for
from tests.ui.conftest import UiFactory


def test_a_running_tasks_page_shows_its_progress_live_and_asks_it_to_stop(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    start_worker("w1", extra=["--tasks", "tests.flow_tasks"])
    u = ui()
    pg = u.page
    tid = client.submit("reporting", 40, 0.25)
    wait_for(lambda: client.get(tid).progress is not None, timeout=30, what="the first progress report")
    u.go(f"#/tasks/{tid}")
    progress = pg.locator("#task-page [data-field=progress]")
    expect(progress).to_contain_text("of 40")
    first = progress.inner_text()
    expect(progress).not_to_have_text(first, timeout=10_000)  # moved on through SSE, no reload
    pg.get_by_role("button", name="Ask to stop").click()
    expect(pg.locator("#task-action-result")).to_have_text("Asked to stop: the task decides when.")
    expect(pg.locator("#task-page [data-field=status]")).to_contain_text("running")
    assert client.get(tid).cancel_requested
    expect(pg.get_by_role("button", name="Ask to stop")).to_have_count(0)
    tid2 = client.submit("until_cancelled", 60)
    wait_for(lambda: client.get(tid2).status == "running", timeout=30, what="the second task to run")
    u.go(f"#/tasks/{tid2}")
    pg.get_by_role("button", name="Ask to stop").click()
    expect(pg.locator("#task-page [data-field=status]")).to_contain_text("cancelled", timeout=15_000)
    assert u.errors == []


def test_the_workers_view_shows_per_type_metrics_over_a_chosen_window(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    from tests.helpers import wait_all

    start_worker("w1", extra=["--tasks", "tests.flow_tasks"])
    ids = [client.submit("pause", 0.06) for _ in range(8)] + [client.submit("fail", "no", _max_retries=0)
                                                             for _ in range(2)]
    wait_all(client, ids, timeout=60)
    u = ui()
    pg = u.page
    u.go("#/workers")
    row = pg.locator("#metrics-table tr[data-type=pause]")
    expect(row.locator("[data-field=finished]")).to_have_text("8")
    expect(row.locator("[data-field=failure-rate]")).to_have_text("0.0 %")
    expect(row.locator("[data-field=run]")).to_contain_text("ms")
    expect(row.locator("[data-field=run] [data-field=error]")).to_have_text("±2 %")  # the sketch's bound, shown
    expect(pg.locator("#metrics-table tr[data-type=fail] [data-field=failure-rate]")).to_have_text("100.0 %")
    pg.select_option("#metrics-window", "5m")
    expect(row.locator("[data-field=finished]")).to_have_text("8")
    assert u.errors == []
