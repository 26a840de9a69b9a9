"""The console's first tour: submit through the form, a task's page, the live list, workers going
lost and alive, the charts, signing in, and a workflow's graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import ApiServer, WorkerFactory, make_settings
from tests.ui.conftest import DOCS, UiFactory


def test_submit_add_through_the_form_shows_success_and_3(page: tuple[Any, ApiServer],
                                                         start_worker: WorkerFactory) -> None:
    from playwright.sync_api import expect

    pg, api = page
    start_worker("worker1")
    pg.goto(f"{api.url}/#/submit")
    expect(pg.locator("#task-type option[value=add]")).to_have_count(1)
    pg.select_option("#task-type", "add")
    expect(pg.locator("#task-signature")).to_have_text("add(a: float, b: float) -> float")
    pg.get_by_label("a", exact=True).fill("1")
    pg.get_by_label("b", exact=True).fill("2")
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=status]")).to_have_text("success")
    expect(pg.locator("#submitted [data-field=result]")).to_have_text("3")
    task_id = pg.locator("#submitted [data-field=id]").inner_text()

    # Opened by id from the Tasks view: its own page, at the top of the window.
    pg.goto(f"{api.url}/#/tasks")
    pg.get_by_label("Task id").fill(task_id)
    pg.get_by_role("button", name="Open").click()
    expect(pg).to_have_url(f"{api.url}/ui/#/tasks/{task_id}")
    expect(pg.locator("#task-page [data-field=status]")).to_have_text("success")
    expect(pg.locator("#task-page pre.result")).to_have_text("3")
    assert pg.evaluate("window.scrollY") == 0

    # The live table shows new tasks; a row opens the task's page with its attempts.
    pg.go_back()
    for i in range(4):
        api.http.post("/api/tasks", json={"task": "multiply", "args": [i, 7]})
    api.http.post("/api/tasks", json={"task": "fail", "args": ["boom"]})
    expect(pg.locator("#task-table tbody tr")).to_have_count(6)
    pg.select_option("#filter-status", "failed")
    expect(pg.locator("#task-table tbody tr")).to_have_count(1)
    expect(pg).to_have_url(f"{api.url}/ui/#/tasks?status=failed")
    pg.select_option("#filter-status", "")
    pg.screenshot(path=str(DOCS / "ui-tasks.png"), full_page=True)
    pg.locator(f"#task-table tbody tr[data-id='{task_id}']").click()
    expect(pg.locator("#attempts [data-field=reason]")).to_have_text("first delivery")
    expect(pg.locator("#attempts [data-field=outcome]")).to_have_text("success")


def test_a_killed_worker_turns_lost_and_alive_again_after_restart(
    page: tuple[Any, ApiServer], start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    pg, api = page
    w1 = start_worker("worker1")
    start_worker("worker2")
    pg.goto(f"{api.url}/#/workers")
    row = pg.locator("#worker-table tr[data-worker=worker1] [data-field=status]")
    expect(row).to_have_text("alive")
    w1.kill()
    expect(row).to_have_text("lost", timeout=15_000)
    pg.screenshot(path=str(DOCS / "ui-workers.png"), full_page=True)
    start_worker("worker1")
    expect(row).to_have_text("alive", timeout=15_000)


def test_overview_draws_throughput_and_the_counts(page: tuple[Any, ApiServer], start_worker: WorkerFactory) -> None:
    from playwright.sync_api import expect

    pg, api = page
    start_worker("worker1")
    api.http.post("/api/tasks/batch", json=[{"task": "add", "args": [i, 1]} for i in range(200)])
    api.http.post("/api/tasks/batch", json=[{"task": "fail", "args": ["x"]} for _ in range(20)])
    pg.goto(f"{api.url}/#charts")  # the old address opens the Overview
    expect(pg).to_have_url(f"{api.url}/ui/#/overview")
    expect(pg.locator("#counts [data-state=success] b")).to_have_text("200", timeout=30_000)
    expect(pg.locator("#counts [data-state=failed] b")).to_have_text("20")
    pg.wait_for_timeout(2500)
    pg.screenshot(path=str(DOCS / "ui-charts.png"), full_page=True)
    pg.locator("#counts [data-state=failed]").click()
    expect(pg).to_have_url(f"{api.url}/ui/#/tasks?status=failed")
    expect(pg.locator("#task-table tbody tr")).to_have_count(20)


def test_token_prompt_appears_when_the_api_requires_one(services: object, ui: UiFactory) -> None:
    from playwright.sync_api import expect

    u = ui(make_settings(services, api_token="letmein"))  # type: ignore[arg-type]
    pg = u.page
    u.go()
    expect(pg.locator("#token-dialog")).to_be_visible()
    pg.get_by_label("Token", exact=True).fill("wrong")
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.locator("#token-error")).to_contain_text("Wrong API token")
    pg.get_by_label("Token", exact=True).fill("letmein")
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.locator("#token-dialog")).to_be_hidden()
    expect(pg.locator("#live")).to_have_class("dot on")


def test_workflow_page_draws_the_graph_live_and_retries_from_the_failed_step(
    page: tuple[Any, ApiServer], start_worker: WorkerFactory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    pg, api = page
    start_worker("worker1", extra=["--tasks", "tests.sample_tasks"])
    marker = str(tmp_path / "flaky")
    body = {"chord": [{"task": "add", "args": [1, 2]}, {"task": "flaky", "args": [marker, 1], "max_retries": 0}],
            "callback": {"task": "echo"}}
    res = api.http.post("/api/workflows", json=body)
    assert res.status_code == 202, res.text
    wid = res.json()["id"]
    pg.goto(f"{api.url}/#workflows/{wid}")  # the old address still opens it
    expect(pg).to_have_url(f"{api.url}/ui/#/workflows/{wid}")
    expect(pg.locator("#workflow-status")).to_have_text("failed")
    expect(pg.locator("#workflow-detail .wf-task[data-state=success]")).to_have_count(1)
    expect(pg.locator("#workflow-detail .wf-task[data-node='4']")).to_have_attribute("data-state", "failed")
    expect(pg.locator("#workflow-detail .wf-task[data-node='5']")).to_have_attribute("data-state", "pending")
    expect(pg.locator(f"#workflow-table tbody tr[data-id='{wid}']")).to_contain_text("2 / 3")
    pg.get_by_role("button", name="Retry from failed steps").click()
    expect(pg.locator("#workflow-status")).to_have_text("success")
    expect(pg.locator("#workflow-detail [data-field=result]")).to_have_text('[[3,"ok after 2 runs"]]')
    pg.screenshot(path=str(DOCS / "ui-workflow.png"), full_page=True)
    # A step's task page links back to its workflow.
    pg.locator("#workflow-detail .wf-task[data-node='3'] a").click()
    expect(pg.locator("#task-page")).to_contain_text(wid)
