"""Every figure the console shows agrees with what Redis and Kafka hold, after a kill, a retry and a delay.

One scenario serves every view: two workers run quick tasks, timed sleeps, failures, a task that
fails once and then succeeds, a retry due in ten minutes, a task delayed five minutes and a
workflow with a failed step; then one worker, busy with two long tasks, is killed with SIGKILL and
Kafka hands its partitions (and the two tasks) to the other, whose slots are then full, so two more
tasks wait. Each test reads one view in Chromium and compares it with the truth read independently
of the figure's own source: the task records (with every run's history) for counts, per-worker and
per-type figures; the raw Redis keys for which tasks exist; kafka-python for the lag (the console's
own Kafka client is librdkafka); librdkafka's admin API for the group's assignment; and the tasks'
own arguments for run times.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from taskq.client import Client
from taskq.devstack import stop_process
from taskq.models import TaskRecord
from taskq.settings import Settings
from tests.helpers import (
    ApiServer,
    Services,
    WorkerProc,
    keys_on,
    make_settings,
    start_worker_process,
    wait_all,
    wait_for,
)
from tests.ui.conftest import ARGS, CHROMIUM

TASKS = ["--tasks", "tests.sample_tasks"]
NOTHING = "\u2013"
PAGE = 25  # rows on the Tasks view's first page
# The timed sleeps: seven of 0.5 s and five of 1 s, so the median is 0.5 s and p95 and p99 are 1 s
# whatever the ranks' rounding.
SHORT, LONG = 0.5, 1.0


@dataclass
class World:
    settings: Settings
    api: ApiServer
    client: Client
    killed: WorkerProc
    survivor: WorkerProc
    moved: list[str]  # the killed worker's two long tasks, redelivered to the survivor
    waiting: list[str]  # submitted once the survivor's slots were full
    workflow: str

    def records(self) -> list[TaskRecord]:
        """Every task record under the scenario's prefix, found by the raw keys (not by an index)."""
        r = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        try:
            ids = [k.removeprefix(f"{self.settings.prefix}task:")
                   for k in r.scan_iter(match=f"{self.settings.prefix}task:*", count=1000)]
        finally:
            r.close()
        return [self.client.get(i) for i in ids]


def submit(api: ApiServer, body: dict[str, Any]) -> str:
    res = api.http.post("/api/tasks", json=body)
    assert res.status_code == 202, res.text
    return res.json()["id"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("truth")
    settings = make_settings(services)
    api = ApiServer(settings)
    client = Client(settings)
    workers: list[WorkerProc] = []
    try:
        a = start_worker_process(settings, "truth-a", folder / "a.log", concurrency=3, extra=TASKS)
        workers.append(a)
        b = start_worker_process(settings, "truth-b", folder / "b.log", concurrency=2, extra=TASKS)
        workers.append(b)

        def split() -> bool:
            held = {w.id: w.partitions for w in client.workers() if w.status == "alive"}
            return len(held) == 2 and all(held.values()) and sum(map(len, held.values())) == settings.partitions

        wait_for(split, timeout=60, what="both workers to hold partitions")
        done = [submit(api, {"task": "add", "args": [i, 1]}) for i in range(12)]
        done += [submit(api, {"task": "sleep", "args": [SHORT]}) for _ in range(7)]
        done += [submit(api, {"task": "sleep", "args": [LONG]}) for _ in range(5)]
        done += [submit(api, {"task": "fail", "args": ["on purpose"], "max_retries": 0}) for _ in range(2)]
        done.append(submit(api, {"task": "flaky", "args": [str(folder / "flaky"), 1]}))  # fails once, then succeeds
        later = submit(api, {"task": "later", "args": [str(folder / "later"), 600]})  # a retry due in 10 min
        submit(api, {"task": "add", "args": [1, 1], "delay": 300})  # delayed 5 min
        res = api.http.post("/api/workflows", json={
            "chord": [{"task": "add", "args": [1, 2]},
                      {"task": "flaky", "args": [str(folder / "wf-flaky"), 1], "max_retries": 0}],
            "callback": {"task": "echo"}})
        assert res.status_code == 202, res.text
        workflow = res.json()["id"]
        wait_all(client, done, timeout=60)
        wait_for(lambda: client.get(later).status == "retrying", timeout=30, what="the retry to be scheduled")
        wait_for(lambda: client.workflow(workflow).status == "failed", timeout=30, what="the workflow to fail")

        # Two long tasks aimed at the first worker's partitions, then a SIGKILL while it runs them.
        mine = next(w.partitions for w in client.workers() if w.id == a.id)
        moved = [submit(api, {"task": "sleep", "args": [600], "key": k}) for k in keys_on(mine, settings.partitions, 2)]
        wait_for(lambda: all((r := client.get(t)).status == "running" and r.worker == a.id for t in moved),
                 timeout=30, what="the long tasks to run on truth-a")
        a.kill()
        wait_for(lambda: all((r := client.get(t)).status == "running" and r.worker == b.id for t in moved),
                 timeout=60, what="the long tasks to be redelivered to truth-b")
        waiting = [submit(api, {"task": "sleep", "args": [600]}) for _ in range(2)]
        yield World(settings, api, client, a, b, moved, waiting, workflow)
    finally:
        for w in workers:
            stop_process(w.proc, timeout=3, sig=9)
        client.close()
        api.close()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, errors


def open_view(pg: Any, world: World, hash_: str) -> None:
    pg.goto(f"{world.api.url}/ui/{hash_}")


def seconds(text: str) -> float:
    """A span as the console writes it ("850 ms", "1.0 s", "12 s", "3 min 2 s") in seconds."""
    if m := re.fullmatch(r"([\d.]+) ms", text):
        return float(m[1]) / 1000
    if m := re.fullmatch(r"([\d.]+) s", text):
        return float(m[1])
    if m := re.fullmatch(r"(\d+) min (\d+) s", text):
        return int(m[1]) * 60 + int(m[2])
    raise AssertionError(f"not a span: {text!r}")


def settled(check: Any, *, what: str, timeout: float = 20) -> None:
    """The console refreshes every couple of seconds: wait until its figure equals the truth read at
    the same moment, and say both when it never does."""
    last: list[Any] = []

    def agree() -> bool:
        shown, truth = check()
        last[:] = [shown, truth]
        return bool(shown == truth)

    try:
        wait_for(agree, timeout=timeout, what=what, interval=0.3)
    except AssertionError:
        raise AssertionError(f"{what}: the console shows {last[0]!r}, the truth is {last[1]!r}") from None


def test_the_overview_counts_every_state_as_the_records_hold_it(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    open_view(page, world, "#/overview")
    expect(page.locator("#counts [data-state=queued] b")).to_be_visible()

    def check() -> tuple[dict[str, int], dict[str, int]]:
        truth = Counter(str(r.status) for r in world.records())
        shown = {el.get_attribute("data-state"): int(el.locator("b").inner_text().replace(",", ""))
                 for el in page.locator("#counts [data-state]").all()}
        return shown, {s: truth.get(s, 0) for s in shown} | dict(truth)

    settled(check, what="the Overview's counts")
    expect(page.locator("#ov-workers")).to_have_text("1")
    running = sum(1 for r in world.records() if r.status == "running")
    assert f"{running} running" in page.locator("#summary").inner_text()


def test_the_lag_is_what_kafka_holds_past_the_groups_committed_offsets(page: Any, world: World) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=world.settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=world.settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(world.settings.tasks_topic, p) for p in range(world.settings.partitions)]

        def truth() -> int:
            ends = consumer.end_offsets(parts)
            group = world.settings.group_id
            committed = admin.list_group_offsets({group: parts})[group]
            return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in parts)

        open_view(page, world, "#/overview")
        settled(lambda: (page.locator("#ov-lag").inner_text(), str(truth())), what="the Overview's lag")
        # The two long tasks still run and the two behind them wait: at least those four are not committed.
        assert truth() >= 4
    finally:
        consumer.close()
        admin.close()


def test_the_oldest_waiting_task_is_the_oldest_queued_record_that_is_due(page: Any, world: World) -> None:
    open_view(page, world, "#/overview")
    page.locator("#ov-oldest").filter(has_text=re.compile(r"\d")).wait_for()
    now = time.time()
    ready = [r.created_at for r in world.records()
             if r.status == "queued" and (r.eta is None or r.eta <= now) and r.created_at is not None]
    assert {r.id for r in world.records() if r.status == "queued" and (r.eta is None or r.eta <= now)} \
        == set(world.waiting)
    truth = now - min(ready)
    shown = seconds(page.locator("#ov-oldest").inner_text())
    # The page read it at most one refresh (2 s) before `now`, and rounds it to 0.1 s.
    assert truth - 3.0 <= shown <= truth + 0.1, (shown, truth)


def test_the_scheduled_tile_and_view_list_exactly_the_tasks_due_later(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    now = time.time()
    due = {r.id: r for r in world.records()
           if r.status in ("queued", "retrying") and r.eta is not None and r.eta > now}
    assert len(due) == 2  # the delayed task and the retry
    open_view(page, world, "#/overview")
    expect(page.locator("#ov-scheduled")).to_have_text(str(len(due)))
    open_view(page, world, "#/scheduled")
    expect(page.locator("#scheduled-table tbody tr")).to_have_count(len(due))
    shown = page.locator("#scheduled-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert shown == sorted(due, key=lambda i: due[i].eta or 0)
    for tid, rec in due.items():
        row = page.locator(f"#scheduled-table tr[data-id='{tid}']")
        text = row.locator("[data-field=due]").inner_text()
        m = re.search(r"\(in (.+)\)", text)
        assert m, text
        left = (rec.eta or 0) - time.time()
        assert abs(seconds(m[1]) - left) <= 3, (text, left)
        why = "delayed" if rec.status == "queued" else "retry, attempt 2"
        expect(row.locator("[data-field=why]")).to_have_text(why)


def test_the_workers_view_matches_heartbeats_run_histories_and_kafkas_assignment(page: Any, world: World) -> None:
    from confluent_kafka.admin import AdminClient
    from playwright.sync_api import expect

    admin = AdminClient({"bootstrap.servers": world.settings.kafka_bootstrap})
    group = admin.describe_consumer_groups([world.settings.group_id])[world.settings.group_id].result(timeout=20)
    held = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in group.members}
    assert held == {f"taskq-{world.survivor.id}": list(range(world.settings.partitions))}, held

    records = world.records()
    runs = [h for r in records for h in r.history]
    open_view(page, world, "#/workers")
    for w, alive in ((world.survivor, True), (world.killed, False)):
        row = page.locator(f"#worker-table tr[data-worker='{w.id}']")
        expect(row.locator("[data-field=status]")).to_have_text("alive" if alive else "lost")
        processed = sum(1 for h in runs if h.get("worker") == w.id and h.get("outcome") == "success")
        failed = sum(1 for h in runs if h.get("worker") == w.id and h.get("outcome") in ("failed", "dead", "retry"))
        cells = row.locator("td")
        expect(cells.nth(5)).to_have_text(str(processed))
        expect(cells.nth(6)).to_have_text(str(failed))
        running = {r.id for r in records if r.status == "running" and r.worker == w.id}
        current = row.locator("[data-field=current]")
        if running:
            expect(current.locator("a")).to_have_count(len(running))
            shown = {h.split("/")[-1] for h in current.locator("a").evaluate_all("as => as.map(a => a.hash)")}
            assert shown == running
        else:
            expect(current).to_have_text(NOTHING)
        partitions = row.locator("[data-field=partitions]")
        if alive:
            expect(partitions).to_have_text(", ".join(map(str, held[f"taskq-{w.id}"])))
            expect(row.locator("[data-field=slots]")).to_have_text(f"{len(running)} / 2")
        else:
            expect(partitions).to_have_text(NOTHING)  # the hand-over is done: a live worker holds them all
    assert set(world.moved) == {r.id for r in records if r.status == "running"}


def test_per_type_figures_match_the_runs_and_the_percentiles_are_within_their_stated_error(
    page: Any, world: World
) -> None:
    from playwright.sync_api import expect

    runs: dict[str, Counter[str]] = {}
    for r in world.records():
        for h in r.history:
            if h.get("outcome") in ("success", "failed", "dead", "retry"):
                runs.setdefault(r.task, Counter())["retrying" if h["outcome"] == "retry" else h["outcome"]] += 1
    open_view(page, world, "#/workers")
    for name, counts in runs.items():
        row = page.locator(f"#metrics-table tr[data-type='{name}']")
        expect(row.locator("[data-field=finished]")).to_have_text(str(sum(counts.values())))
        # Failed and dead over the runs that ended; a type whose only run is to be retried has none.
        ended = counts["success"] + counts["failed"] + counts["dead"]
        rate = f"{(counts['failed'] + counts['dead']) / ended * 100:.1f} %" if ended else NOTHING
        expect(row.locator("[data-field=failure-rate]")).to_have_text(rate)
        for outcome, n in counts.items():
            expect(row).to_contain_text(f"{outcome} {n}")
    # sleep's finished runs are exactly seven of SHORT and five of LONG (the long ones still run).
    assert runs["sleep"] == Counter(success=12)
    run = page.locator("#metrics-table tr[data-type='sleep'] [data-field=run]")
    expect(run.locator("[data-field=error]")).to_have_text("±2 %")
    shown = [seconds(s.strip()) for s in run.inner_text().removesuffix("±2 %").split("/")]
    for value, truth in zip(shown, (SHORT, LONG, LONG), strict=True):
        # The run time is the sleep plus the task call's own overhead (well under 5 ms here); the
        # sketch may be off by 2 %, and the console shows whole milliseconds.
        assert truth * 0.98 - 0.001 <= value <= (truth + 0.005) * 1.02 + 0.001, (shown, truth)


def test_the_workflow_graph_shows_each_steps_own_record(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    wf = world.client.workflow(world.workflow)
    open_view(page, world, f"#/workflows/{world.workflow}")
    expect(page.locator("#workflow-status")).to_have_text(str(wf.status))
    cards = page.locator("#workflow-detail .wf-task")
    expect(cards).to_have_count(3)
    seen = 0
    for card in cards.all():
        links = card.locator("a").evaluate_all("as => as.map(a => a.hash)")
        if not links:  # a step not created yet: the callback of a chord whose member failed
            expect(card).to_have_attribute("data-state", "pending")
            continue
        tid = links[0].split("/")[-1]
        expect(card).to_have_attribute("data-state", str(world.client.get(tid).status))
        seen += 1
    assert seen == 2
    done = page.locator(f"#workflow-table tbody tr[data-id='{world.workflow}']")
    expect(done).to_contain_text("2 / 3")


def test_the_tasks_views_totals_are_the_number_of_matching_records(page: Any, world: World) -> None:
    from playwright.sync_api import expect

    records = world.records()
    for status in ("success", "running", "queued", "failed", "retrying"):
        n = sum(1 for r in records if r.status == status)
        open_view(page, world, f"#/tasks?status={status}")
        expect(page.locator("#tasks-total")).to_have_text(f"{n} task{'' if n == 1 else 's'}")
        expect(page.locator("#task-table tbody tr")).to_have_count(min(n, PAGE))
    n = sum(1 for r in records if r.task == "sleep")
    open_view(page, world, "#/tasks?task=sleep")
    expect(page.locator("#tasks-total")).to_have_text(f"{n} tasks")


def test_the_throughput_series_counts_every_finished_run_in_its_10_s_bucket(world: World) -> None:
    truth: Counter[tuple[int, str]] = Counter()
    for r in world.records():
        for h in r.history:
            if h.get("outcome") in ("success", "failed", "dead", "retry"):
                truth[int(h["finished_at"] // 10) * 10, "retrying" if h["outcome"] == "retry" else h["outcome"]] += 1
    series = world.api.http.get("/api/stats/series").json()
    shown = Counter({(int(b["t"]), k): v for b in series for k, v in b.items() if k != "t" and v})
    assert shown == truth
