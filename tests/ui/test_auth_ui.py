"""Signing in from the browser: a session cookie the page cannot read, no token in any URL or in
storage, sign-out, and the read-only token's console (every action hidden)."""

from __future__ import annotations

import pytest

from taskq.settings import Settings
from tests.helpers import ApiServer, Services, WorkerFactory, make_settings
from tests.ui.conftest import DOCS, Ui, UiFactory

WRITE, READ = "write-token-0123456789", "read-token-0123456789"


@pytest.fixture
def auth_settings(services: Services) -> Settings:
    return make_settings(services, api_token=WRITE, api_read_token=READ)


def sign_in(u: Ui, token: str) -> None:
    from playwright.sync_api import expect

    pg = u.page
    expect(pg.locator("#token-dialog")).to_be_visible()
    pg.get_by_label("Token", exact=True).fill(token)
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.locator("#token-dialog")).to_be_hidden()


def test_the_token_never_travels_in_a_url_nor_stays_in_the_page_and_sign_out_ends_the_session(
    ui: UiFactory, auth_settings: Settings, start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1", settings_=auth_settings)
    u = ui(auth_settings)
    pg = u.page
    u.go("#/tasks")
    sign_in(u, WRITE)
    expect(pg.locator("#live")).to_have_class("dot on")  # the event stream rides on the cookie
    u.api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]}, headers={"Authorization": f"Bearer {WRITE}"})
    expect(pg.locator("#task-table tbody tr")).to_have_count(1)
    expect(pg.locator("#session")).to_be_visible()
    expect(pg.locator("#role")).to_be_hidden()
    assert any("/api/events" in r for r in u.requests)
    assert not [r for r in u.requests if WRITE in r or "token=" in r]
    assert pg.evaluate("document.cookie") == ""  # HttpOnly: no script on the page can read it
    assert WRITE not in pg.evaluate("JSON.stringify({...sessionStorage}) + JSON.stringify({...localStorage})")
    cookies = pg.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"], c["path"]) for c in cookies] == [
        ("taskq_session", True, "Strict", "/api")]
    assert WRITE not in cookies[0]["value"]

    # A new tab of the same browser is signed in too; signing out asks for the token again.
    pg.reload()
    expect(pg.locator("#task-table tbody tr")).to_have_count(1)
    expect(pg.locator("#token-dialog")).to_be_hidden()
    pg.get_by_role("button", name="Sign out").click()
    expect(pg.locator("#token-dialog")).to_be_visible()
    assert pg.context.cookies() == []
    pg.reload()
    expect(pg.locator("#token-dialog")).to_be_visible()


def test_the_read_only_token_sees_everything_and_no_action_is_offered(
    ui: UiFactory, auth_settings: Settings, start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1", settings_=auth_settings)
    api = ApiServer(auth_settings)
    try:
        h = {"Authorization": f"Bearer {WRITE}"}
        failed = api.http.post("/api/tasks", json={"task": "fail", "args": ["x"]}, headers=h).json()["id"]
        queued = api.http.post("/api/tasks", json={"task": "add", "args": [1, 1], "delay": 600}, headers=h).json()["id"]
        u = ui(api=api)
        pg = u.page
        u.go("#/tasks")
        sign_in(u, READ)
        expect(pg.locator("#role")).to_have_text("read-only")
        expect(pg.locator("#task-table tbody tr")).to_have_count(2)
        for hidden in ("#bulk", "nav a[data-view=submit]"):
            expect(pg.locator(hidden)).to_be_hidden()
        u.go(f"#/tasks/{failed}")
        expect(pg.locator("#task-page [data-field=status]")).to_have_text("failed")
        expect(pg.locator("#task-page button")).to_have_count(0)
        u.go(f"#/tasks/{queued}")
        expect(pg.locator("#task-page [data-field=status]")).to_have_text("queued")
        expect(pg.locator("#task-page button")).to_have_count(0)
        u.go("#/scheduled")
        expect(pg.locator("#scheduled-table tbody tr")).to_have_count(1)
        expect(pg.locator("#scheduled-table button")).to_have_count(0)
        u.go("#/submit")  # not for this token: back to the overview
        expect(pg).to_have_url(f"{api.url}/ui/#/overview")
        pg.screenshot(path=str(DOCS / "ui-read-only.png"), full_page=True)
        # The API refuses what the page no longer offers, with a message.
        res = pg.evaluate("""async (id) => {
          const r = await fetch(`/api/tasks/${id}/cancel`, { method: 'POST' });
          return [r.status, (await r.json()).detail];
        }""", queued)
        assert res[0] == 403 and "read-only" in res[1]
    finally:
        api.close()


def test_the_audit_view_shows_who_did_what_in_the_console_newest_first(
    ui: UiFactory, auth_settings: Settings, start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    from taskq.api.auth import token_name

    start_worker("worker1", settings_=auth_settings)
    u = ui(auth_settings)
    pg = u.page
    u.go("#/audit")
    sign_in(u, WRITE)
    http, write = u.api.http, {"Authorization": f"Bearer {WRITE}"}
    tid = http.post("/api/tasks", json={"task": "add", "args": [1, 2], "delay": 600}, headers=write).json()["id"]
    assert http.post(f"/api/tasks/{tid}/cancel", headers=write).status_code == 200
    pg.reload()
    rows = pg.locator("#audit-table tbody tr")
    expect(rows.first.locator("[data-field=action]")).to_have_text(f"POST /api/tasks/{tid}/cancel")
    expect(rows.first.locator("[data-field=who]")).to_have_text(f"write {token_name(auth_settings, 'write')} · bearer")
    expect(rows.first.locator("[data-field=status]")).to_have_text("200")
    expect(rows.nth(1).locator("[data-field=detail]")).to_have_text("signed in as write")
    assert WRITE not in pg.content()
    pg.screenshot(path=str(DOCS / "ui-audit.png"), full_page=True)
