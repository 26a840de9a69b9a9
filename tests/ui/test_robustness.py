"""The console when things go wrong and on other screens: an outage banner while the API or Redis
is down, stale data marked as such, 400 px wide screens, the dark colour scheme, visible badges,
and the keyboard."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.devstack import RedisServer, free_port
from taskq.settings import Settings
from tests.helpers import ApiServer, Services, WorkerFactory, make_settings
from tests.ui.conftest import DOCS, UiFactory

VIEWS = ["overview", "tasks", "scheduled", "dead", "workers", "schedules", "workflows", "audit", "submit"]
# Whether anything on the page sticks out of the window (scroll areas inside the page may).
OVERFLOW = """() => [...document.querySelectorAll('body *')].filter((e) => {
  if (!e.getClientRects().length || e.closest('.table-wrap, nav[aria-label=Views], dialog:not([open])')) return false;
  const r = e.getBoundingClientRect();
  return r.right > innerWidth + 0.5 || r.left < -0.5;
}).map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)"""


def test_an_outage_of_the_api_shows_a_banner_marks_data_stale_and_clears_when_it_returns(
    ui: UiFactory, settings: Settings, start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1")
    api = ApiServer(settings)
    u = ui(api=api)
    pg = u.page
    u.go("#/workers")
    expect(pg.locator("#worker-table tr[data-worker=worker1]")).to_have_count(1)
    expect(pg.locator("#banner")).to_be_hidden()
    port = api.port
    api.close()
    banner = pg.locator("#banner")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("The taskq API is unreachable.")
    # The workers shown are kept, marked stale, not emptied.
    expect(pg.locator("#view-workers")).to_have_attribute("data-stale", "1")
    expect(pg.locator("#view-workers .stale-note")).to_contain_text("Not up to date")
    expect(pg.locator("#worker-table tr[data-worker=worker1]")).to_have_count(1)
    expect(pg.locator("#summary")).to_have_class("stale")
    # Another filter's rows are never shown under a new one.
    u.go("#/tasks?status=dead")
    expect(pg.locator("#view-tasks")).to_have_attribute("data-stale", "1")
    expect(pg.locator("#task-table tbody tr")).to_have_count(0)
    pg.screenshot(path=str(DOCS / "ui-outage.png"), full_page=True)
    # An action says so rather than "Failed to fetch".
    u.go("#/tasks/" + "a" * 32)
    expect(pg.locator("#task-page .error")).to_have_text("the taskq API is unreachable")

    back = ApiServer(settings, port=port)
    try:
        expect(banner).to_be_hidden(timeout=15_000)
        expect(pg.locator("#view-task")).not_to_have_attribute("data-stale", "1")
        u.go("#/workers")
        expect(pg.locator("#view-workers")).not_to_have_attribute("data-stale", "1")
        expect(pg.locator("#summary")).not_to_have_class("stale")
        expect(pg.locator("#live")).to_have_class("dot on", timeout=15_000)
    finally:
        back.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    r = RedisServer(data_dir=tmp_path / "redis", port=free_port())
    r.start()
    yield r
    r.stop()


def test_a_redis_outage_is_named_in_the_banner_until_redis_is_back(
    ui: UiFactory, services: Services, own_redis: RedisServer
) -> None:
    from playwright.sync_api import expect

    u = ui(make_settings(services, redis_url=own_redis.url))
    pg = u.page
    u.go("#/overview")
    expect(pg.locator("#ov-workers")).to_have_text("0")
    own_redis.stop()
    banner = pg.locator("#banner")
    expect(banner).to_contain_text("Redis: Redis is unreachable", timeout=15_000)
    expect(pg.locator("#view-overview")).to_have_attribute("data-stale", "1")
    own_redis.start()
    expect(banner).to_be_hidden(timeout=20_000)
    expect(pg.locator("#view-overview")).not_to_have_attribute("data-stale", "1")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_at_400_px_every_view_fits_and_the_active_tab_is_underlined(ui: UiFactory, scheme: str,
                                                                    start_worker: WorkerFactory) -> None:
    from playwright.sync_api import expect

    start_worker("worker1")
    u = ui(width=400, height=800, color_scheme=scheme)
    pg, api = u.page, u.api
    tid = api.http.post("/api/tasks", json={"task": "fail", "args": ["a long error " * 20]}).json()["id"]
    for view in [*VIEWS, f"tasks/{tid}"]:
        u.go(f"#/{view}")
        name = view.split("/")[0]
        expect(pg.locator(f"nav a[data-view={name}]")).to_have_attribute("aria-current", "page")
        pg.wait_for_timeout(600)
        assert pg.evaluate(OVERFLOW) == [], view
        assert pg.evaluate("document.documentElement.scrollWidth") <= 400, view
        tabs = pg.evaluate("""() => [...document.querySelectorAll('nav[aria-label=Views] a')].map((a) => {
          const r = a.getBoundingClientRect(), s = getComputedStyle(a);
          return {view: a.dataset.view, left: r.left, right: r.right, bottom: s.borderBottomColor};
        })""")
        underlined = [t["view"] for t in tabs if t["bottom"] not in ("rgba(0, 0, 0, 0)", "transparent")]
        assert underlined == [name], (view, tabs)
        for a, b in itertools.pairwise(tabs):
            assert a["right"] <= b["left"] + 0.5, (view, a, b)  # each tab's underline is under itself only
    pg.screenshot(path=str(DOCS / f"ui-narrow-{scheme}.png"), full_page=True)


def luminance(rgb: str) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (float(x) for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_badge_is_visible_and_dark_mode_is_dark(ui: UiFactory, scheme: str) -> None:
    u = ui(color_scheme=scheme)
    pg = u.page
    u.go("#/overview")
    pg.wait_for_selector("#counts .badge")
    colours = pg.evaluate("""async () => {
      const { badge } = await import('/ui/dom.js');
      const kinds = ['queued', 'running', 'retrying', 'retry', 'success', 'failed', 'dead', 'cancelled', 'lost',
                     'alive', 'stopped', 'delayed', 'paused', 'pending', 'something-new'];
      const box = document.createElement('div');
      document.querySelector('main').append(box);
      const out = {};
      for (const k of kinds) {
        const b = badge(k);
        box.append(b);
        out[k] = [getComputedStyle(b).color, getComputedStyle(b).backgroundColor];
      }
      const page = getComputedStyle(document.body), card = getComputedStyle(document.querySelector('.card'));
      out.page = [page.color, page.backgroundColor];
      out.card = [card.color, card.backgroundColor];
      return out;
    }""")
    page_ink, page_bg = colours.pop("page")
    card_ink, card_bg = colours.pop("card")
    for kind, (ink, bg) in colours.items():
        assert bg not in ("rgba(0, 0, 0, 0)", "transparent"), kind
        assert contrast(ink, bg) >= 3.0, (kind, ink, bg)  # large-text contrast at least
    assert contrast(page_ink, page_bg) >= 7 and contrast(card_ink, card_bg) >= 7
    if scheme == "dark":
        assert luminance(page_bg) < 0.05 and luminance(card_bg) < 0.05 and luminance(page_ink) > 0.6
    else:
        assert luminance(page_bg) > 0.8
    pg.screenshot(path=str(DOCS / f"ui-overview-{scheme}.png"), full_page=True)


def test_the_keyboard_opens_rows_and_closes_dialogs(ui: UiFactory) -> None:
    from playwright.sync_api import expect

    u = ui()
    pg, api = u.page, u.api
    ids = [api.http.post("/api/tasks", json={"task": "add", "args": [i, 1], "delay": 600}).json()["id"]
           for i in range(2)]
    u.go("#/tasks")
    expect(pg.locator("#task-table tbody tr")).to_have_count(2)
    pg.locator("#filter-q").focus()
    for _ in range(20):
        pg.keyboard.press("Tab")
        if pg.evaluate("document.activeElement.dataset.id || ''"):
            break
    assert pg.evaluate("document.activeElement.dataset.id") == ids[1]  # the newest row first
    pg.keyboard.press("Enter")
    expect(pg).to_have_url(f"{api.url}/ui/#/tasks/{ids[1]}")
    pg.go_back()
    pg.get_by_role("button", name="Cancel all…").focus()
    pg.keyboard.press("Enter")
    expect(pg.locator("#confirm-dialog")).to_be_visible()
    expect(pg.locator("#confirm-count")).to_have_text("2 tasks match.")
    pg.keyboard.press("Escape")
    expect(pg.locator("#confirm-dialog")).to_be_hidden()
    assert api.http.get(f"/api/tasks/{ids[0]}").json()["status"] == "queued"
    # The views are links: Tab reaches them and the current one says so.
    assert pg.locator("nav a[aria-current=page]").get_attribute("data-view") == "tasks"


