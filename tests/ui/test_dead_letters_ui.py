"""The console's Dead letters view in Chromium: a poison message shows with its reason, position and
preview, its raw bytes download, and Replay submits a corrected task that then succeeds."""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaProducer

from taskq.client import Client
from taskq.settings import Settings
from tests.helpers import WorkerFactory, wait_for
from tests.ui.conftest import UiFactory


def test_a_poison_message_is_listed_downloaded_and_replayed_corrected(
    ui: UiFactory, settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    from playwright.sync_api import expect

    start_worker("worker1")
    junk = b'{"v":1,"id":"bad","task":"add","args":"not a list"}'
    p = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    p.send(settings.tasks_topic, value=junk).get(timeout=30)
    p.close()
    wait_for(lambda: client.dead_letters(), timeout=60, what="the dead letter")
    u = ui()
    pg = u.page
    u.go("#/dead")
    row = pg.locator("#dead-table tbody tr[data-kind=message]")
    expect(row).to_have_count(1)
    expect(row.locator("[data-field=reason]")).to_contain_text("field 'args' must be a list")
    expect(row.locator("[data-field=preview]")).to_contain_text('"args":"not a list"')
    with pg.expect_download() as download:
        row.get_by_text("Download").click()
    assert Path(download.value.path()).read_bytes() == junk
    row.get_by_role("button", name="Replay…").click()
    expect(pg.locator("#dead-replay-note")).to_contain_text("never decoded")
    pg.fill("#dead-replay-task", "add")
    pg.fill("#dead-replay-args", "[40, 2]")
    pg.click("#dead-replay-ok")
    link = pg.locator("#dead-replay-done a")
    expect(link).to_be_visible()
    assert client.wait(link.inner_text(), timeout=60).result == 42
    pg.fill("#dead-replay-args", "[40, ")
    pg.click("#dead-replay-ok")
    expect(pg.locator("#dead-replay-error")).to_contain_text("not JSON")
