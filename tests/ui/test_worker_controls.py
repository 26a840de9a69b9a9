"""Quiet and resume a worker, pause and resume a task type, from the Workers view in Chromium."""

from __future__ import annotations

from taskq.client import Client
from tests.helpers import WorkerFactory, wait_for
from tests.ui.conftest import UiFactory


def test_a_worker_is_quieted_and_resumed_and_a_task_type_paused_and_resumed(
    ui: UiFactory, start_worker: WorkerFactory, client: Client
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1")
    u = ui()
    pg, api = u.page, u.api
    u.go("#/workers")
    row = pg.locator("#worker-table tr[data-worker=worker1]")
    row.get_by_role("button", name="Quiet").click()
    expect(row.locator("[data-field=status]")).to_contain_text("quiet")
    assert next(w for w in client.workers() if w.id == "worker1").quiet
    row.get_by_role("button", name="Resume").click()
    expect(row.locator("[data-field=status]")).not_to_contain_text("quiet")

    add = pg.locator("#type-table tr[data-type=add]")
    expect(add).to_contain_text("add(a: float, b: float) -> float")
    add.get_by_role("button", name="Pause").click()
    expect(add.locator("[data-field=state]")).to_contain_text("paused")
    tid = api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]}).json()["id"]
    expect(add.locator("[data-field=state]")).to_contain_text("1 held", timeout=15_000)
    assert client.get(tid).status == "queued"
    add.get_by_role("button", name="Resume").click()
    expect(add.locator("[data-field=state]")).to_have_text("active")
    wait_for(lambda: client.get(tid).status == "success", timeout=30, what="the held task to run")
