"""The operator's console in Chromium: deep links, filters, totals and pages in the URL, the task
page refreshed in place, bulk actions with a count and a confirmation, the Scheduled view, the
Overview's current rate, and each worker's current tasks."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from taskq.client import Client
from tests.helpers import ApiServer, WorkerFactory, wait_all, wait_for
from tests.ui.conftest import DOCS, UiFactory

TASKS = ["--tasks", "tests.ui.ui_tasks"]
NOTHING = "\u2013"  # what the console shows in an empty cell (an en dash)


def submit(api: ApiServer, bodies: list[dict[str, Any]]) -> list[str]:
    r = api.http.post("/api/tasks/batch", json=bodies)
    assert r.status_code == 202, r.text
    return r.json()["ids"]  # type: ignore[no-any-return]


def rows(pg: Any) -> list[str]:
    return pg.locator("#task-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")  # type: ignore[no-any-return]


def test_filters_totals_and_pages_are_urls_that_open_the_same_page(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1")
    u = ui()
    pg, api = u.page, u.api
    adds = submit(api, [{"task": "add", "args": [i, 1]} for i in range(30)])
    muls = submit(api, [{"task": "multiply", "args": [i, 3]} for i in range(4)])
    fails = submit(api, [{"task": "fail", "args": [f"boom-{i}"]} for i in range(3)])
    wait_all(client, adds + muls + fails, timeout=60)

    u.go("#/tasks?task=add")
    expect(pg.locator("#tasks-total")).to_have_text("30 tasks")
    expect(pg.locator("#filter-task")).to_have_value("add")
    expect(pg.locator("#task-table tbody tr")).to_have_count(25)
    first = rows(pg)
    assert set(first) <= set(adds) and first == sorted(first, key=lambda i: -adds.index(i))  # newest first
    expect(pg.locator("#page-prev")).to_be_disabled()
    pg.get_by_role("button", name="Older →").click()
    expect(pg).to_have_url(re.compile(r"#/tasks\?task=add&cursor=[^&]+$"))
    expect(pg.locator("#task-table tbody tr")).to_have_count(5)
    second = rows(pg)
    assert set(first) | set(second) == set(adds)
    deep = pg.url
    pg.get_by_role("button", name="← Newer").click()
    expect(pg.locator("#task-table tbody tr")).to_have_count(25)
    assert rows(pg) == first
    # The page's URL opens that page, in a fresh tab too.
    other = ui(api=api)
    other.page.goto(deep)
    expect(other.page.locator("#task-table tbody tr")).to_have_count(5)
    assert rows(other.page) == second
    pg.go_back()  # the browser's back button walks the pages
    expect(pg).to_have_url(deep)
    expect(pg.locator("#task-table tbody tr")).to_have_count(5)

    # Each filter is typed or chosen and lands in the URL.
    u.go("#/tasks")
    pg.get_by_label("Name starts with").fill("mul")
    expect(pg).to_have_url(re.compile(r"#/tasks\?task_prefix=mul$"))
    expect(pg.locator("#tasks-total")).to_have_text("4 tasks")
    pg.get_by_role("button", name="Clear").click()
    pg.get_by_label("Search args, errors, ids").fill("boom-1")
    expect(pg).to_have_url(re.compile(r"q=boom-1"))
    expect(pg.locator("#task-table tbody tr")).to_have_count(1)
    assert rows(pg) == [fails[1]]
    pg.get_by_role("button", name="Clear").click()
    pg.get_by_label("State", exact=True).select_option("failed")
    pg.get_by_label("Worker", exact=True).fill("worker1")
    expect(pg).to_have_url(re.compile(r"status=failed&worker=worker1"))
    expect(pg.locator("#task-table tbody tr")).to_have_count(3)
    pg.get_by_label("Worker", exact=True).fill("nobody")
    expect(pg.locator("#tasks-empty")).to_be_visible()
    expect(pg.locator("#tasks-total")).to_have_text("0 tasks")
    # A time range: everything was created in the last 15 minutes, nothing after now.
    u.go("#/tasks?range=15m&task=multiply")
    expect(pg.locator("#filter-range")).to_have_value("15m")
    expect(pg.locator("#tasks-total")).to_have_text("4 tasks")
    u.go(f"#/tasks?range=custom&since={int(time.time()) + 3600}")
    expect(pg.locator("#filter-since")).to_be_visible()
    expect(pg.locator("#tasks-total")).to_have_text("0 tasks")
    # The dropdown lists the task names with their counts.
    u.go("#/tasks")
    expect(pg.locator("#filter-task option[value=add]")).to_have_text("add (30)")


def test_a_total_that_is_not_exact_reads_as_a_lower_bound(ui: UiFactory) -> None:
    from playwright.sync_api import expect

    u = ui()
    pg = u.page

    def fake(route: Any) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(
            {"items": [], "next_cursor": "1.5:abc", "prev_cursor": None, "total": 10000, "total_exact": False}))

    pg.route(re.compile(r".*/api/tasks\?.*q=x.*"), fake)
    u.go("#/tasks?q=x")
    expect(pg.locator("#tasks-total")).to_have_text("10,000+ tasks")
    expect(pg.locator("#tasks-empty")).to_contain_text("try older")
    expect(pg.locator("#page-next")).to_be_enabled()


def test_the_first_page_is_live_and_rows_change_state_in_place(ui: UiFactory, start_worker: WorkerFactory) -> None:
    from playwright.sync_api import expect

    u = ui()
    pg, api = u.page, u.api
    u.go("#/tasks?status=queued")
    expect(pg.locator("#tasks-total")).to_have_text("0 tasks")
    ids = submit(api, [{"task": "add", "args": [i, i]} for i in range(3)])
    expect(pg.locator("#task-table tbody tr")).to_have_count(3)  # no reload: the event stream
    u.go("#/tasks")
    expect(pg.locator(f"#task-table tr[data-id='{ids[0]}']")).to_have_attribute("data-status", "queued")
    start_worker("worker1")
    row = pg.locator(f"#task-table tr[data-id='{ids[0]}']")
    expect(row).to_have_attribute("data-status", "success", timeout=30_000)


def test_the_task_page_shows_everything_and_refreshes_in_place_after_cancel_and_retry(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    u = ui()
    pg, api = u.page, u.api
    tid = api.http.post("/api/tasks", json={"task": "add", "args": [2, 3], "kwargs": {}, "delay": 300,
                                            "max_retries": 1}).json()["id"]
    u.go("#/tasks")
    pg.get_by_label("Task id").fill(tid)
    pg.get_by_label("Task id").press("Enter")
    page = pg.locator("#task-page")
    expect(page.locator("[data-field=status]")).to_have_text("queued")
    expect(page.locator("[data-field=due]")).to_contain_text("in 4 min")
    expect(page.locator("pre.args")).to_have_text("[\n  2,\n  3\n]")
    expect(page.locator("[data-field=attempts]")).to_have_text("0 of at most 2")
    assert pg.evaluate("document.querySelector('#task-page').getBoundingClientRect().top") < 200  # not below the fold
    pg.get_by_role("button", name="Cancel").click()
    expect(page.locator("[data-field=status]")).to_have_text("cancelled")
    expect(pg.locator("#task-action-result")).to_have_text("Cancelled.")
    expect(pg.get_by_role("button", name="Cancel")).to_have_count(0)
    assert client.get(tid).status == "cancelled"
    start_worker("worker1")
    pg.get_by_role("button", name="Retry").click()
    expect(page.locator("[data-field=status]")).to_have_text("success", timeout=30_000)  # live, no reload
    expect(page.locator("pre.result")).to_have_text("5")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    expect(page.locator("#attempts [data-field=reason]")).to_have_text("manual retry")
    # A change made elsewhere shows too; a failure shows its whole error.
    fid = api.http.post("/api/tasks", json={"task": "fail", "args": ["kaput"]}).json()["id"]
    u.go(f"#/tasks/{fid}")
    expect(page.locator("[data-field=status]")).to_have_text("failed")
    expect(page.locator("pre.error-text")).to_contain_text("RuntimeError: kaput")
    expect(page.locator("#attempts [data-field=outcome]")).to_have_text("failed")
    pg.screenshot(path=str(DOCS / "ui-task.png"), full_page=True)
    u.go("#/tasks/" + "0" * 32)
    expect(page.locator(".error")).to_contain_text("not found")


def test_bulk_actions_count_first_confirm_then_act_on_the_whole_filter(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1")
    u = ui()
    pg, api = u.page, u.api
    failed = submit(api, [{"task": "fail", "args": [f"bulk-{i}"], "max_retries": 0} for i in range(4)])
    wait_all(client, failed, timeout=30)
    submit(api, [{"task": "add", "args": [1, 1]}])  # not matched

    u.go("#/tasks?status=failed&task=fail")
    expect(pg.locator("#task-table tbody tr")).to_have_count(4)
    dialog = pg.locator("#confirm-dialog")
    pg.get_by_role("button", name="Retry all…").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("state failed · task fail")
    expect(pg.locator("#confirm-count")).to_have_text("4 tasks match.")
    pg.locator("#confirm-cancel").click()  # dismissed: nothing happens
    expect(dialog).to_be_hidden()
    assert all(client.get(t).attempts == 1 for t in failed)
    pg.get_by_role("button", name="Retry all…").click()
    pg.get_by_role("button", name="Retry 4 tasks").click()
    expect(pg.locator("#bulk-result")).to_have_text("Retry: 4 done.")
    wait_for(lambda: all(client.get(t).attempts == 2 and client.get(t).status == "failed" for t in failed),
             timeout=30, what="the retried tasks to fail again")
    assert client.get(failed[0]).history[-1]["reason"] == "manual retry"

    # Cancel every delayed task of a filter.
    delayed = submit(api, [{"task": "add", "args": [i, 0], "delay": 600} for i in range(3)])
    u.go("#/tasks?status=queued&task=add")
    expect(pg.locator("#task-table tbody tr")).to_have_count(3)
    expect(pg.get_by_role("button", name="Retry all…")).to_be_hidden()  # queued tasks are not retried
    pg.get_by_role("button", name="Cancel all…").click()
    pg.get_by_role("button", name="Cancel 3 tasks").click()
    expect(pg.locator("#tasks-empty")).to_be_visible()
    assert {client.get(t).status for t in delayed} == {"cancelled"}

    # Purge what finished more than 0 minutes ago, with the age in the dialog.
    u.go("#/tasks?status=cancelled")
    pg.get_by_role("button", name="Purge finished…").click()
    expect(pg.locator("#confirm-count")).to_have_text("No task matches: nothing to do.")  # older than 7 days
    expect(pg.locator("#confirm-ok")).to_be_disabled()
    pg.locator("#purge-unit").select_option(label="minutes")
    pg.locator("#purge-age").fill("0")
    expect(pg.locator("#confirm-count")).to_have_text("3 tasks match.")
    pg.get_by_role("button", name="Purge 3 tasks").click()
    expect(pg.locator("#bulk-result")).to_have_text("Purge: 3 done.")
    expect(pg.locator("#tasks-total")).to_have_text("0 tasks")


def test_the_scheduled_view_lists_delayed_tasks_and_retries_with_their_due_times(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1", extra=TASKS)
    u = ui()
    pg, api = u.page, u.api
    later = api.http.post("/api/tasks", json={"task": "add", "args": [1, 2], "delay": 240}).json()["id"]
    soon = api.http.post("/api/tasks", json={"task": "add", "args": [3, 4], "delay": 90}).json()["id"]
    retry = api.http.post("/api/tasks", json={"task": "retry_later", "args": [150]}).json()["id"]
    wait_for(lambda: client.get(retry).status == "retrying", timeout=30, what="the retry")
    u.go("#/scheduled")
    expect(pg.locator("#scheduled-table tbody tr")).to_have_count(3)
    order = pg.locator("#scheduled-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert order == [soon, retry, later]
    row = pg.locator(f"#scheduled-table tr[data-id='{soon}']")
    expect(row.locator("[data-field=due]")).to_contain_text("in 1 min")
    expect(row.locator("[data-field=why]")).to_have_text("delayed")
    rrow = pg.locator(f"#scheduled-table tr[data-id='{retry}']")
    expect(rrow.locator("[data-field=why]")).to_have_text("retry, attempt 2")
    expect(rrow).to_contain_text("not ready yet")
    expect(pg.locator("#scheduled-total")).to_have_text("3 due later")
    pg.screenshot(path=str(DOCS / "ui-scheduled.png"), full_page=True)
    # The Overview counts them; a row's Cancel takes it off.
    rrow.get_by_role("button", name="Cancel").click()
    expect(pg.locator("#scheduled-table tbody tr")).to_have_count(2)
    assert client.get(retry).status == "cancelled"
    u.go("#/overview")
    expect(pg.locator("#ov-scheduled")).to_have_text("2")
    # A row opens the task's page, which says when it is due.
    u.go("#/scheduled")
    pg.locator(f"#scheduled-table tr[data-id='{later}']").click()
    expect(pg.locator("#task-page [data-field=due]")).to_contain_text("in 3 min")


def test_the_overview_rate_is_the_last_10_seconds_and_drops_to_zero_once_all_stopped(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1", concurrency=8)
    u = ui()
    pg, api = u.page, u.api
    u.go("#/overview")
    expect(pg.locator("#ov-workers")).to_have_text("1")
    ids = submit(api, [{"task": "add", "args": [i, 1]} for i in range(300)])
    ids += submit(api, [{"task": "fail", "args": ["r"]} for _ in range(30)])
    expect(pg.locator("#ov-rate")).not_to_have_text("0.00/s", timeout=15_000)
    expect(pg.locator("#ov-rate-by [data-rate=failed]")).not_to_contain_text(" 0.00/s")
    wait_all(client, ids, timeout=60)
    done = time.monotonic()
    expect(pg.locator("#ov-rate")).to_have_text("0.00/s", timeout=20_000)
    # The last 10 s: a minute's average would stay above zero for 60 s after the last finish.
    assert time.monotonic() - done < 45
    assert "0.00/s finished" in pg.locator("#summary").inner_text()
    expect(pg.locator("#counts [data-state=success] b")).to_have_text("300")
    expect(pg.locator("#ov-oldest")).to_have_text("none")


def test_workers_list_their_current_tasks_and_a_lost_workers_tasks_are_flagged(
    ui: UiFactory, start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    w = start_worker("worker1", concurrency=2)
    u = ui()
    pg, api = u.page, u.api
    ids = submit(api, [{"task": "sleep", "args": [60]} for _ in range(2)])
    u.go("#/workers")
    cur = pg.locator("#worker-table tr[data-worker=worker1] [data-field=current]")
    expect(cur.locator("a")).to_have_count(2, timeout=20_000)
    for tid in ids:
        expect(cur.locator(f"a[href='#/tasks/{tid}']")).to_have_count(1)
    w.kill()
    expect(cur.locator("[data-flag=worker-lost]")).to_have_count(2, timeout=15_000)
    # Its partitions are nobody's until the group hands them over: they show under it, as waiting...
    parts = pg.locator("#worker-table tr[data-worker=worker1] [data-field=partitions]")
    expect(parts).to_contain_text("no live worker holds them yet")
    u.go(f"#/tasks/{ids[0]}")
    expect(pg.locator("#task-page [data-flag=worker-lost]")).to_have_text("worker lost — will be redelivered")
    # ...until a live worker holds them: then the hand-over is done and the column says so.
    start_worker("worker2", concurrency=2)
    u.go("#/workers")
    expect(parts).to_have_text(NOTHING, timeout=30_000)
    held = pg.locator("#worker-table tr[data-worker=worker2] [data-field=partitions]")
    expect(held).not_to_have_text(NOTHING)
