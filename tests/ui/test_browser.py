"""The web UI in real headless Chromium (Debian's), driven by Playwright, against the real stack."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.settings import Settings
from tests.helpers import ApiServer, WorkerFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots refresh the README's images only when asked (TASKQ_UPDATE_SCREENSHOTS=1), so a test run
# leaves the work tree clean.
DOCS = (Path(__file__).resolve().parents[2] / "docs" if os.environ.get("TASKQ_UPDATE_SCREENSHOTS")
        else Path(tempfile.mkdtemp(prefix="taskq-screenshots-")))
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make chromium)"),
]


@pytest.fixture
def page(settings: Settings) -> Iterator[tuple[object, ApiServer]]:
    from playwright.sync_api import sync_playwright

    api = ApiServer(settings)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        pg = browser.new_page(viewport={"width": 1360, "height": 900})
        pg.set_default_timeout(20_000)
        yield pg, api
        browser.close()
    api.close()


def test_submit_add_through_the_form_shows_success_and_3(page: tuple, start_worker: WorkerFactory) -> None:  # type: ignore[type-arg]
    from playwright.sync_api import expect

    pg, api = page
    start_worker("worker1")
    pg.goto(f"{api.url}/")
    expect(pg.locator("#task-type option[value=add]")).to_have_count(1)
    pg.select_option("#task-type", "add")
    pg.get_by_label("a", exact=True).fill("1")
    pg.get_by_label("b", exact=True).fill("2")
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=status]")).to_have_text("success")
    expect(pg.locator("#submitted [data-field=result]")).to_have_text("3")
    task_id = pg.locator("#submitted [data-field=id]").inner_text()

    # Look it up by id, as the seed's "check status" did.
    pg.get_by_label("Task id").fill(task_id)
    pg.get_by_role("button", name="Look up").click()
    expect(pg.locator("#lookup-result [data-field=status]")).to_have_text("success")
    expect(pg.locator("#lookup-result [data-field=result]")).to_have_text("3")

    # The live table shows it; a click opens the detail with its attempt history.
    for i in range(4):
        api.http.post("/api/tasks", json={"task": "multiply", "args": [i, 7]})
    api.http.post("/api/tasks", json={"task": "fail", "args": ["boom"]})
    expect(pg.locator("#task-table tbody tr")).to_have_count(6)
    pg.locator(f"#task-table tbody tr[data-id='{task_id}']").click()
    expect(pg.locator("#task-detail")).to_contain_text("first delivery")
    pg.select_option("#filter-status", "failed")
    expect(pg.locator("#task-table tbody tr")).to_have_count(1)
    pg.select_option("#filter-status", "")
    pg.screenshot(path=str(DOCS / "ui-tasks.png"), full_page=True)


def test_a_killed_worker_turns_lost_and_alive_again_after_restart(
    page: tuple, start_worker: WorkerFactory  # type: ignore[type-arg]
) -> None:
    from playwright.sync_api import expect

    pg, api = page
    w1 = start_worker("worker1")
    start_worker("worker2")
    pg.goto(f"{api.url}/#workers")
    row = pg.locator("#worker-table tr[data-worker=worker1] [data-field=status]")
    expect(row).to_have_text("alive")
    w1.kill()
    expect(row).to_have_text("lost", timeout=15_000)
    pg.screenshot(path=str(DOCS / "ui-workers.png"), full_page=True)
    start_worker("worker1")
    expect(row).to_have_text("alive", timeout=15_000)


def test_charts_view_draws_throughput(page: tuple, start_worker: WorkerFactory) -> None:  # type: ignore[type-arg]
    from playwright.sync_api import expect

    pg, api = page
    start_worker("worker1")
    api.http.post("/api/tasks/batch", json=[{"task": "add", "args": [i, 1]} for i in range(200)])
    api.http.post("/api/tasks/batch", json=[{"task": "fail", "args": ["x"]} for _ in range(20)])
    pg.goto(f"{api.url}/#charts")
    expect(pg.locator("#counts")).to_contain_text("success")
    pg.wait_for_function("() => document.querySelector('#counts').textContent.includes('200')", timeout=30_000)
    pg.wait_for_timeout(2500)
    pg.screenshot(path=str(DOCS / "ui-charts.png"), full_page=True)


def test_token_prompt_appears_when_the_api_requires_one(
    services: object, start_worker: WorkerFactory  # type: ignore[type-arg]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.helpers import make_settings

    s = make_settings(services, api_token="letmein")  # type: ignore[arg-type]
    api = ApiServer(s)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            pg = browser.new_page()
            pg.goto(f"{api.url}/")
            expect(pg.locator("#token-dialog")).to_be_visible()
            pg.get_by_label("Token", exact=True).fill("wrong")
            pg.get_by_role("button", name="Sign in").click()
            expect(pg.locator("#token-error")).to_contain_text("API token")
            pg.get_by_label("Token", exact=True).fill("letmein")
            pg.get_by_role("button", name="Sign in").click()
            expect(pg.locator("#token-dialog")).to_be_hidden()
            browser.close()
    finally:
        api.close()


def test_workflow_page_draws_the_graph_live_and_retries_from_the_failed_step(
    page: tuple, start_worker: WorkerFactory, tmp_path: Path  # type: ignore[type-arg]
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
    pg.goto(f"{api.url}/#workflows/{wid}")
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
    expect(pg.locator("#lookup-result")).to_contain_text(wid)
