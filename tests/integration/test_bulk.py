"""Bulk retry, cancel and purge on a filter, through the HTTP API and the SDK, with real workers."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaConsumer

from taskq.client import Client
from taskq.devstack import KafkaServer, free_port, spawn, stop_process
from taskq.errors import BrokerError
from taskq.kafka import ensure_topics
from taskq.models import TaskMessage, TaskState
from taskq.query import TaskFilter
from taskq.settings import Settings
from taskq.store import Finish, Store
from tests.helpers import ApiServer, Services, WorkerFactory, make_settings, settings_env, wait_for


@pytest.fixture
def fast(services: Services) -> Settings:
    """Settings whose retries come quickly (the manual-retry budget test runs five retries)."""
    return make_settings(services, retry_backoff=0.05)


@pytest.fixture
def api(fast: Settings) -> Iterator[httpx.Client]:
    a = ApiServer(fast)
    yield a.http
    a.close()


def _until(http: httpx.Client, ids: list[str], check, what: str, timeout: float = 30) -> dict[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    recs: dict[str, dict] = {}  # type: ignore[type-arg]

    def done() -> bool:
        recs.update({i: http.get(f"/api/tasks/{i}").json() for i in ids})
        return all(check(r) for r in recs.values())

    wait_for(done, timeout=timeout, what=what)
    return recs


def _produced(settings: Settings, ids: set[str], timeout: float = 10) -> Counter[tuple[str, int]]:
    """How many messages of each (task id, generation) the tasks topic holds, for the given ids."""
    consumer = KafkaConsumer(settings.tasks_topic, bootstrap_servers=settings.kafka_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1500)
    seen: Counter[tuple[str, int]] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = 0
        for rec in consumer:
            m = orjson.loads(rec.value)
            got += 1
            if m["id"] in ids:
                seen[(m["id"], m["gen"])] += 1
        if not got:
            break
    consumer.close()
    return seen


def test_bulk_retry_counts_first_then_runs_every_matched_task_again_once(
        fast: Settings, api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1", settings_=fast)
    failing = [api.post("/api/tasks", json={"task": "fail", "args": [f"boom {i}"]}).json()["id"] for i in range(6)]
    other = api.post("/api/tasks", json={"task": "fail", "args": ["other"], "max_retries": 0}).json()["id"]
    ok = api.post("/api/tasks", json={"task": "add", "args": [1, 2]}).json()["id"]
    _until(api, [*failing, other, ok], lambda r: r["status"] in ("failed", "success"), "the first runs")
    body = {"task": "fail", "q": "BOOM"}
    dry = api.post("/api/tasks/bulk/retry", json={**body, "dry_run": True}).json()
    assert dry == {"matched": 6, "done": 0, "skipped": 0, "dry_run": True, "capped": False, "limit": 100_000}
    real = api.post("/api/tasks/bulk/retry", json=body).json()
    assert (real["matched"], real["done"], real["skipped"], real["dry_run"]) == (6, 6, 0, False)
    recs = _until(api, failing, lambda r: r["status"] == "failed" and r["attempts"] == 2, "the retried runs")
    for r in recs.values():
        assert [(a["attempt"], a["reason"]) for a in r["history"]] == [(1, "first delivery"), (2, "manual retry")]
    assert api.get(f"/api/tasks/{other}").json()["attempts"] == 1  # not matched (no "boom"): untouched
    produced = _produced(fast, set(failing))
    assert produced == Counter({**{(i, 0): 1 for i in failing}, **{(i, 1): 1 for i in failing}})


def test_bulk_cancel_cancels_queued_tasks_that_then_never_run(
        fast: Settings, api: httpx.Client, start_worker: WorkerFactory) -> None:
    # No worker yet: every task waits in Kafka, queued.
    adds = [api.post("/api/tasks", json={"task": "add", "args": [i, 1]}).json()["id"] for i in range(5)]
    subs = [api.post("/api/tasks", json={"task": "sub", "args": [i, 1]}).json()["id"] for i in range(2)]
    delayed = api.post("/api/tasks", json={"task": "add", "args": [9, 9], "delay": 60}).json()["id"]
    dry = api.post("/api/tasks/bulk/cancel", json={"task": "add", "dry_run": True}).json()
    assert dry["matched"] == 6 and dry["done"] == 0
    assert api.post("/api/tasks/bulk/cancel", json={"task": "add"}).json() == {
        "matched": 6, "done": 6, "skipped": 0, "dry_run": False, "capped": False, "limit": 100_000}
    start_worker("w1", settings_=fast)
    _until(api, subs, lambda r: r["status"] == "success", "the sub tasks to run")
    for tid in [*adds, delayed]:
        r = api.get(f"/api/tasks/{tid}").json()
        assert (r["status"], r["attempts"], r["history"]) == ("cancelled", 0, [])
    page = api.get("/api/tasks", params={"status": "cancelled"}).json()
    assert (page["total"], page["total_exact"]) == (6, True)


def test_bulk_purge_deletes_finished_tasks_from_every_index(fast: Settings, api: httpx.Client,
                                                             start_worker: WorkerFactory) -> None:
    start_worker("w1", settings_=fast)
    old = [api.post("/api/tasks", json={"task": "multiply", "args": [i, 2]}).json()["id"] for i in range(4)]
    kept = api.post("/api/tasks", json={"task": "add", "args": [1, 1]}).json()["id"]
    _until(api, [*old, kept], lambda r: r["status"] == "success", "the tasks to finish")
    assert api.post("/api/tasks/bulk/purge", json={"task": "multiply", "older_than": 3600, "dry_run": True}
                    ).json()["matched"] == 0  # finished just now
    dry = api.post("/api/tasks/bulk/purge", json={"task": "multiply", "older_than": 0, "dry_run": True}).json()
    real = api.post("/api/tasks/bulk/purge", json={"task": "multiply", "older_than": 0}).json()
    assert dry["matched"] == real["matched"] == real["done"] == 4
    store = Store(fast)
    try:
        for tid in old:
            assert api.get(f"/api/tasks/{tid}").status_code == 404
            for idx in ("all", "state:success", "task:multiply"):
                assert store.r.zscore(store.key(*f"idx:{idx}".split(":")), tid) is None, idx
    finally:
        store.close()
    assert api.get(f"/api/tasks/{kept}").json()["status"] == "success"
    assert [t["id"] for t in api.get("/api/tasks").json()["items"]] == [kept]


@pytest.mark.parametrize(("path", "body", "why"), [
    ("retry", {"status": "success"}, "retry takes tasks that are cancelled, dead, failed; status 'success'"),
    ("cancel", {"status": "running"}, "cancel takes tasks that are queued, retrying"),
    ("retry", {"since": 10, "until": 5}, "since (10) is after until (5)"),
    ("purge", {}, "older_than: Field required"),
    ("purge", {"older_than": -1}, "older_than: Input should be greater than or equal to 0"),
    ("cancel", {"stauts": "queued"}, "stauts: Extra inputs are not permitted"),
    ("retry", {"q": "x" * 201}, "q: String should have at most 200 characters"),
    ("retry", {"status": "nope"}, "status: Input should be"),
])
def test_bad_bulk_bodies_are_422_saying_what_is_wrong(api: httpx.Client, path: str, body: dict, why: str) -> None:  # type: ignore[type-arg]
    r = api.post(f"/api/tasks/bulk/{path}", json=body)
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"]


def test_an_infinite_older_than_is_422(api: httpx.Client) -> None:
    r = api.post("/api/tasks/bulk/purge", content=b'{"older_than": Infinity}',
                 headers={"content-type": "application/json"})
    assert r.status_code == 422 and "older_than must be a finite number of seconds" in r.json()["detail"]


@pytest.mark.parametrize(("params", "why"), [
    ({"since": "yesterday"}, "since: Input should be a valid number"),
    ({"since": 10, "until": 5}, "since (10) is after until (5)"),
    ({"until": -3}, "until: Input should be greater than or equal to 0"),
    ({"q": "y" * 201}, "q: String should have at most 200 characters"),
    ({"cursor": "12.50:abc"}, "cursor '12.50:abc' is invalid"),
    ({"cursor": "tomorrow"}, "cursor: String should match pattern"),
    ({"status": "lost"}, "status: Input should be"),
])
def test_bad_list_filters_are_422_saying_which(api: httpx.Client, params: dict, why: str) -> None:  # type: ignore[type-arg]
    r = api.get("/api/tasks", params=params)
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"]


def test_listing_filters_and_pages_through_the_api(api: httpx.Client, fast: Settings) -> None:
    store = Store(fast)
    try:
        t0 = 1_700_000_000.0
        store.create([TaskMessage(id=f"a{i:02d}", task="report.x" if i % 2 else "add", args=[f"cust-{i}"],
                                  created_at=t0 + i) for i in range(12)])
    finally:
        store.close()
    page = api.get("/api/tasks", params={"task_prefix": "report.", "limit": 4}).json()
    assert [t["id"] for t in page["items"]] == ["a11", "a09", "a07", "a05"]
    assert (page["total"], page["total_exact"], page["prev_cursor"]) == (6, True, None)
    nxt = api.get("/api/tasks", params={"task_prefix": "report.", "limit": 4, "cursor": page["next_cursor"]}).json()
    assert [t["id"] for t in nxt["items"]] == ["a03", "a01"] and nxt["next_cursor"] is None
    back = api.get("/api/tasks", params={"task_prefix": "report.", "limit": 4, "cursor": nxt["prev_cursor"]}).json()
    assert back["items"] == page["items"] and back["prev_cursor"] is None
    found = api.get("/api/tasks", params={"q": "CUST-1", "since": t0 + 5, "until": t0 + 11}).json()
    assert [t["id"] for t in found["items"]] == ["a11", "a10"] and found["total"] == 2
    assert api.get("/api/tasks/names").json() == {"names": [{"name": "add", "total": 6},
                                                            {"name": "report.x", "total": 6}]}
    assert api.get("/api/tasks/names", params={"prefix": "rep"}).json()["names"] == [{"name": "report.x",
                                                                                         "total": 6}]


def test_a_dead_task_retried_by_hand_gets_its_retries_again_and_the_history_says_manual_retry(
        fast: Settings, api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1", settings_=fast)
    tid = api.post("/api/tasks", json={"task": "fail", "args": ["nope"], "max_retries": 2}).json()["id"]
    (first,) = _until(api, [tid], lambda r: r["status"] == "dead", "the task to die").values()
    assert first["attempts"] == 3
    r = api.post(f"/api/tasks/{tid}/retry")
    assert r.status_code == 200 and r.json()["retry_limit"] == 5
    (again,) = _until(api, [tid], lambda r: r["status"] == "dead" and r["attempts"] == 6, "two more retries").values()
    assert [(a["attempt"], a["reason"], a["outcome"]) for a in again["history"]] == [
        (1, "first delivery", "retry"), (2, "retry", "retry"), (3, "retry", "dead"),
        (4, "manual retry", "retry"), (5, "retry", "retry"), (6, "retry", "dead")]
    assert again["max_retries"] == 2


def test_a_retry_by_hand_of_a_task_without_max_retries_uses_its_task_s_advertised_budget(
        client: Client, store: Store, start_worker: WorkerFactory, settings: Settings) -> None:
    start_worker("w1", extra=["--tasks", "tests.sample_tasks"])
    msg = TaskMessage(id="f" * 32, task="flaky", args=["/nonexistent/x", 0])
    store.create([msg])
    store.start_many([msg], worker="wx", lease="L")
    store.finish_many([Finish(msg.id, 1, TaskState.DEAD, error="boom")], worker="wx", lease="L")
    store.r.hset(store.key("task", msg.id), "attempts", 6)  # as if it had used its five retries
    assert client.store.get(msg.id).max_retries is None
    rec = client.retry(msg.id)  # flaky is @task(max_retries=5): live workers advertise it
    assert rec.retry_limit == 11


def test_a_bulk_call_stops_at_its_cap_and_says_so(services: Services) -> None:
    settings = make_settings(services, bulk_max=3)
    ensure_topics(settings)
    with Client(settings) as client:
        msgs = [TaskMessage(id=f"c{i:02d}", task="add", args=[i, 0]) for i in range(5)]
        client.store.create(msgs)
        client.store.start_many(msgs, worker="w", lease="L")
        client.store.finish_many([Finish(m.id, 1, TaskState.FAILED, error="x") for m in msgs], worker="w", lease="L")
        filt = TaskFilter(task="add")
        assert client.retry_all(filt, dry_run=True).to_dict() == {
            "matched": 3, "done": 0, "skipped": 0, "dry_run": True, "capped": True, "limit": 3}
        seen = []
        first = client.retry_all(filt, progress=seen.append)
        assert (first.matched, first.done, first.capped) == (3, 3, True) and seen[-1].done == 3
        second = client.retry_all(filt)
        assert (second.matched, second.done, second.capped) == (2, 2, False)
        assert client.list_tasks(status=TaskState.QUEUED).total == 5
    assert _produced(settings, {m.id for m in msgs}) == Counter({(m.id, 1): 1 for m in msgs})


def test_bulk_actions_work_behind_several_api_processes(fast: Settings, start_worker: WorkerFactory,
                                                       tmp_path: Path) -> None:
    ensure_topics(fast)
    start_worker("w1", settings_=fast)
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as fh:
        proc = spawn([sys.executable, "-m", "taskq", "api", "--port", str(port), "--workers", "2"],
                     env=settings_env(fast), stdout=fh)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, what=f"the API processes ({log.read_text(errors='replace')})")
        ids = [httpx.post(f"{url}/api/tasks", json={"task": "fail", "args": [str(i)]}, timeout=10).json()["id"]
               for i in range(8)]
        with httpx.Client(base_url=url, timeout=30) as http:
            _until(http, ids, lambda r: r["status"] == "failed", "the first runs")
        for _ in range(3):  # new connections: either process may answer
            assert httpx.post(f"{url}/api/tasks/bulk/retry", json={"task": "fail", "dry_run": True},
                              timeout=30).json()["matched"] == 8
        assert httpx.post(f"{url}/api/tasks/bulk/retry", json={"task": "fail"}, timeout=30).json()["done"] == 8
        with httpx.Client(base_url=url, timeout=30) as http:
            _until(http, ids, lambda r: r["status"] == "failed" and r["attempts"] == 2, "the retried runs")
    finally:
        stop_process(proc, timeout=20)


def test_a_bulk_retry_that_kafka_refuses_leaves_the_tasks_as_they_were_and_says_so(
    services: Services, tmp_path: Path
) -> None:
    # A broker of its own, stopped before the retry: Kafka itself refuses, no stand-in producer.
    kafka = KafkaServer(data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    kafka.start()
    try:
        settings = make_settings(services, kafka_bootstrap=kafka.bootstrap, submit_timeout=3.0)
        ensure_topics(settings)
        with Client(settings) as client:
            msgs = [TaskMessage(id=f"k{i:02d}", task="add", args=[i, 0]) for i in range(4)]
            client.store.create(msgs)
            client.store.start_many(msgs, worker="w", lease="L")
            client.store.finish_many([Finish(m.id, 1, TaskState.DEAD, error="x") for m in msgs], worker="w",
                                     lease="L")
            assert client.producer is not None  # connected while the broker was up, as a long-running API is
            kafka.stop()
            with pytest.raises(BrokerError, match=r"0 task\(s\) were retried before Kafka failed"):
                client.retry_all(TaskFilter(task="add"))
            assert {client.get(m.id).status for m in msgs} == {TaskState.DEAD}
            assert client.retry_all(TaskFilter(task="add"), dry_run=True).matched == 4
    finally:
        kafka.stop()
