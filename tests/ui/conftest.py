"""The web UI in real headless Chromium (Debian's), driven by Playwright, against the real stack.

``ui(...)`` opens a page on an API server (the test's settings unless given others) with a
viewport and colour scheme; every JavaScript error on the page fails the test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from taskq.settings import Settings
from tests.helpers import ApiServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots refresh the README's images only when asked (TASKQ_UPDATE_SCREENSHOTS=1), so a test run
# leaves the work tree clean.
DOCS = (Path(__file__).resolve().parents[2] / "docs" if os.environ.get("TASKQ_UPDATE_SCREENSHOTS")
        else Path(tempfile.mkdtemp(prefix="taskq-screenshots-")))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)
            if not Path(CHROMIUM).exists():
                item.add_marker(pytest.mark.skip(reason="Debian's chromium is not installed (make chromium)"))


@dataclass
class Ui:
    page: Any  # playwright.sync_api.Page
    api: ApiServer
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def go(self, hash_: str = "") -> None:
        self.page.goto(f"{self.api.url}/ui/{hash_}")


UiFactory = Callable[..., Ui]


@pytest.fixture
def ui(settings: Settings) -> Iterator[UiFactory]:
    from playwright.sync_api import sync_playwright

    servers: list[ApiServer] = []
    opened: list[Ui] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)

        def open_ui(settings_: Settings | None = None, *, api: ApiServer | None = None, width: int = 1360,
                    height: int = 900, color_scheme: Literal["light", "dark"] = "light") -> Ui:
            if api is None:
                api = ApiServer(settings_ or settings)
                servers.append(api)
            context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=color_scheme)
            pg = context.new_page()
            pg.set_default_timeout(20_000)
            u = Ui(pg, api)
            pg.on("pageerror", lambda exc: u.errors.append(str(exc)))
            pg.on("request", lambda r: u.requests.append(r.url))
            opened.append(u)
            return u

        yield open_ui
        browser.close()
    for s in servers:
        s.close()
    errors = [e for u in opened for e in u.errors]
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(ui: UiFactory) -> tuple[Any, ApiServer]:
    """The page and its API server (the form most tests need)."""
    u = ui()
    return u.page, u.api
