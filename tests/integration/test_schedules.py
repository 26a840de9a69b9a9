"""Periodic schedules against the real Kafka and Redis: exactly one enqueue per tick however many
workers tick, the missed-tick policy after an outage, the claim's compare-and-set, the HTTP API and
the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskq.client import Client
from taskq.devstack import RedisServer, free_port
from taskq.kafka import ensure_topics
from taskq.models import TaskRecord, TaskState
from taskq.schedules import Schedule, ScheduleStore, plan, tick_task_id
from taskq.settings import Settings
from tests.helpers import ApiServer, Services, WorkerFactory, make_settings, settings_env, wait_all, wait_for


def runs_of(client: Client, name: str) -> list[TaskRecord]:
    """The tasks a schedule's ticks created, oldest tick first (each record's eta is its tick)."""
    s = client.schedule(name)
    page = client.list_tasks(task=s.task, limit=500)
    return sorted((r for r in page.items if r.id.startswith("s")), key=lambda r: r.eta or 0)


def assert_one_task_per_tick(name: str, records: list[TaskRecord]) -> list[int]:
    ticks = [round((r.eta or 0) * 1000) for r in records]
    assert len(set(ticks)) == len(ticks), f"a tick was enqueued twice: {ticks}"
    assert all(r.id == tick_task_id(name, t) for r, t in zip(records, ticks, strict=True))
    return ticks


def missing_ticks(ticks: list[int], step: int) -> list[int]:
    present = set(ticks)
    return [t for t in range(ticks[0], ticks[-1] + 1, step) if t not in present]


def test_three_workers_enqueue_each_tick_of_a_one_second_schedule_exactly_once(
    client: Client, start_worker: WorkerFactory
) -> None:
    for wid in ("w1", "w2", "w3"):
        start_worker(wid)
    t0 = time.time()
    client.add_schedule("every-second", "add", args=[1, 2], every=1)
    wait_for(lambda: client.schedule("every-second").runs >= 6, timeout=20, what="six ticks")
    client.pause_schedule("every-second")
    t1 = time.time()
    records = runs_of(client, "every-second")
    ticks = assert_one_task_per_tick("every-second", records)
    # Exactly the ticks from the first one after the schedule was made up to its next_at (a pause
    # keeps it), each once; and those are the whole seconds of the wall-clock window (t0, t1], less
    # at most the last one, which the pause may have beaten to its claim.
    raw = client.store.r.hgetall(f"{client.store.prefix}sched:every-second")
    first = Schedule("x", "add", every=1).next_after(round(float(raw["created_at"]) * 1000))
    assert ticks == list(range(first, int(raw["next_at"]), 1000))
    expected = int(t1) - int(t0)
    assert expected - 1 <= len(ticks) <= expected, (len(ticks), expected)
    assert client.schedule("every-second").runs == len(ticks)
    finished = wait_all(client, [r.id for r in records], timeout=60)
    assert all(r.status == TaskState.SUCCESS and r.result == 3 for r in finished), finished
    info = client.schedule("every-second")
    assert info.last_task_id == records[-1].id and info.last_status == "success" and info.dropped == 0


def test_a_retried_or_raced_claim_of_a_tick_creates_one_task(client: Client) -> None:
    store = ScheduleStore(client.store)
    s = Schedule("raced", "add", [2, 2], every=60)
    info = store.create(s)
    assert info.next_at is not None
    next_at = round(info.next_at * 1000)
    p = plan(s, next_at, next_at + 100)
    assert p is not None and len(p.ticks) == 1
    assert store.claim(s, next_at, p, now=next_at + 100) == 1
    # A second worker with the same view, or this one retrying after a lost answer: the CAS refuses.
    assert store.claim(s, next_at, p, now=next_at + 150) is None
    # Even with next_at put back (as if the claim's write were undone), the tick's id exists already.
    client.store.r.hset(f"{client.store.prefix}sched:raced", "next_at", str(next_at))
    assert store.claim(s, next_at, p, now=next_at + 200) == 0
    assert store.get("raced").runs == 1
    rec = client.get(tick_task_id("raced", p.ticks[0]))
    assert rec.status == TaskState.QUEUED and rec.args == [2, 2] and rec.eta == p.ticks[0] / 1000
    # A claim made with an older definition does nothing either.
    store.delete("raced")
    assert store.claim(s, next_at, p, now=next_at + 300) is None


def _stop_all(workers: list) -> None:  # type: ignore[type-arg]
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()


def test_ticks_missed_while_every_worker_is_stopped_are_skipped(
    client: Client, start_worker: WorkerFactory
) -> None:
    workers = [start_worker("w1"), start_worker("w2")]
    client.add_schedule("skipper", "add", args=[1, 1], every=1, misfire_grace=3)
    wait_for(lambda: client.schedule("skipper").runs >= 2, timeout=20, what="two ticks")
    _stop_all(workers)
    stopped = client.schedule("skipper").runs
    down_until = time.time() + 6
    wait_for(lambda: time.time() > down_until, timeout=10, what="the outage to last 6 s")
    start_worker("w1", wait_ready=False)
    wait_for(lambda: client.schedule("skipper").runs >= stopped + 3, timeout=30, what="ticks after the restart")
    client.pause_schedule("skipper")
    records = runs_of(client, "skipper")
    ticks = assert_one_task_per_tick("skipper", records)
    gap = missing_ticks(ticks, 1000)
    assert len(gap) >= 3 and gap == list(range(gap[0], gap[-1] + 1, 1000)), gap  # one block: the outage
    assert client.schedule("skipper").dropped == len(gap)
    late = [r for r in records if (r.created_at or 0) - (r.eta or 0) > 3]
    assert late == []  # skip: nothing older than the grace was enqueued


def test_ticks_missed_in_a_redis_outage_are_caught_up_at_most_n(
    services: Services, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    redis = RedisServer(data_dir=tmp_path / "redis", port=free_port())
    redis.start()
    settings = make_settings(services, redis_url=redis.url)
    ensure_topics(settings)
    client = Client(settings)
    try:
        start_worker("w1", settings_=settings)
        start_worker("w2", settings_=settings)
        client.add_schedule("catcher", "add", args=[2, 3], every=1, misfire_grace=3, missed="catchup", catchup=2)
        wait_for(lambda: client.schedule("catcher").runs >= 2, timeout=20, what="two ticks")
        before = client.schedule("catcher").runs
        redis.stop()
        down_until = time.time() + 8
        wait_for(lambda: time.time() > down_until, timeout=12, what="the outage to last 8 s")
        redis.start()
        wait_for(lambda: client.schedule("catcher").runs >= before + 5, timeout=30, what="ticks after the outage")
        client.pause_schedule("catcher")
        records = runs_of(client, "catcher")
        ticks = assert_one_task_per_tick("catcher", records)
        gap = missing_ticks(ticks, 1000)
        assert gap and gap == list(range(gap[0], gap[-1] + 1, 1000)), gap
        assert client.schedule("catcher").dropped == len(gap)
        late = [r for r in records if (r.created_at or 0) - (r.eta or 0) > 3]
        assert len(late) == 2, [(r.eta, r.created_at) for r in records]
        assert round((late[0].eta or 0) * 1000) == gap[-1] + 1000  # the two most recent missed ticks
        finished = wait_all(client, [r.id for r in records], timeout=60)
        assert all(r.status == TaskState.SUCCESS and r.result == 5 for r in finished)
    finally:
        client.close()
        redis.stop()


def test_a_worker_declares_its_code_schedules_once_however_many_start(
    settings: Settings, start_worker: WorkerFactory, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "sched_tasks.py"
    module.write_text("from taskq import task, every\n\n"
                      "@task(schedule=every(seconds=3600))\n"
                      "def hourly() -> str:\n    return 'tick'\n")
    s = settings.model_copy(update={"tasks_modules": ["sched_tasks"]})
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    start_worker("w1", settings_=s)
    wait_for(lambda: any(x.name == "hourly" for x in client.schedules()), timeout=20, what="the declared schedule")
    first = client.schedule("hourly")
    assert first.source == "code" and first.every == 3600
    client.pause_schedule("hourly")
    client.add_schedule("made-by-api", "add", args=[1, 1], cron="0 4 * * *")
    w2 = start_worker("w2", settings_=s)
    wait_for(lambda: "schedules declared: hourly unchanged" in w2.output(), timeout=20, what="w2 to declare")
    again = client.schedule("hourly")
    assert again.next_at is None and again.paused  # unchanged definition: state kept, pause included
    assert {x.name for x in client.schedules()} == {"hourly", "made-by-api"}


def test_the_http_api_creates_reads_pauses_runs_and_deletes_schedules(settings: Settings) -> None:
    api = ApiServer(settings)
    try:
        http = api.http
        res = http.post("/api/schedules", json={"name": "nightly", "task": "add", "args": [1, 2],
                                                "cron": "0 3 * * *", "timezone": "Europe/Berlin"})
        assert res.status_code == 201, res.text
        body = res.json()
        assert body["name"] == "nightly" and body["next_at"] > time.time() and body["last_at"] is None
        assert body["source"] == "api" and body["paused"] is False
        assert http.post("/api/schedules", json={"name": "nightly", "task": "add", "every": 5}).status_code == 409
        for bad, words in [({"cron": "61 * * * *"}, "cron expression"), ({"every": 0}, "every must be"),
                           ({"cron": "* * * * *", "every": 5}, "exactly one of cron"), ({}, "exactly one of cron"),
                           ({"every": 5, "timezone": "Nowhere/City"}, "unknown timezone"),
                           ({"every": 5, "name": "bad name"}, "schedule name")]:
            res = http.post("/api/schedules", json={"name": "x", "task": "add", **bad})
            assert res.status_code == 422 and words in res.json()["detail"], (bad, res.text)
        listed = http.get("/api/schedules").json()
        assert [s["name"] for s in listed] == ["nightly"]
        assert {"next_at", "last_at", "last_task_id", "last_status"} <= set(listed[0])
        assert http.get("/api/schedules/nope").status_code == 404
        paused = http.post("/api/schedules/nightly/pause").json()
        assert paused["paused"] is True and paused["next_at"] is None
        resumed = http.post("/api/schedules/nightly/resume").json()
        assert resumed["paused"] is False and resumed["next_at"] > time.time()
        run = http.post("/api/schedules/nightly/run")
        assert run.status_code == 202
        tid = run.json()["id"]
        info = http.get("/api/schedules/nightly").json()
        assert info["last_task_id"] == tid and info["last_status"] == "queued"
        assert http.post("/api/schedules/nope/run").status_code == 404
        assert http.delete("/api/schedules/nightly").status_code == 204
        assert http.get("/api/schedules/nightly").status_code == 404
        assert http.delete("/api/schedules/nightly").status_code == 404
    finally:
        api.close()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskq", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=60)


def test_the_cli_adds_lists_pauses_resumes_runs_and_deletes_schedules(settings: Settings) -> None:
    ensure_topics(settings)
    res = _cli(settings, "schedule", "add", "nightly", "add", "1", "2", "--cron", "0 3 * * *",
               "--timezone", "Europe/Berlin")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("nightly added: add cron 0 3 * * * (Europe/Berlin); next run 20")
    assert _cli(settings, "schedule", "add", "poll", "add", "2", "2", "--every", "30", "--catchup", "3").returncode == 0
    listed = {s["name"]: s for s in json.loads(_cli(settings, "schedules", "--json").stdout)}
    assert listed["poll"]["missed"] == "catchup" and listed["poll"]["catchup"] == 3
    assert listed["nightly"]["args"] == [1, 2] and listed["nightly"]["timezone"] == "Europe/Berlin"
    table = _cli(settings, "schedules").stdout
    assert "NEXT RUN" in table and "0 3 * * * Europe/Berlin" in table and "every 30s" in table
    assert _cli(settings, "schedule", "pause", "nightly").stdout.strip() == "nightly paused"
    assert "paused" in _cli(settings, "schedules").stdout
    assert _cli(settings, "schedule", "resume", "nightly").stdout.strip() == "nightly resumed"
    out = _cli(settings, "schedule", "run", "nightly").stdout.strip()
    assert out.startswith("nightly submitted: ")
    tid = out.split(": ")[1]
    listed = {s["name"]: s for s in json.loads(_cli(settings, "schedules", "--json").stdout)}
    assert listed["nightly"]["last_task_id"] == tid and listed["nightly"]["last_status"] == "queued"
    assert _cli(settings, "schedule", "delete", "nightly").stdout.strip() == "nightly deleted"
    gone = _cli(settings, "schedule", "delete", "nightly")
    assert gone.returncode == 1 and "schedule 'nightly' not found" in gone.stderr
    for bad, words in [(["--cron", "61 * * * *"], "cron expression"), (["--every", "0"], "every must be"),
                       (["--every", "5", "--timezone", "Nowhere/City"], "unknown timezone"), ([], "exactly one of")]:
        res = _cli(settings, "schedule", "add", "x", "add", *bad)
        assert res.returncode == 2 and words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    exists = _cli(settings, "schedule", "add", "poll", "add", "--every", "5")
    assert exists.returncode == 1 and "exists already" in exists.stderr
