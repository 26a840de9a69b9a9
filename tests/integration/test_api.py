"""Every HTTP endpoint and error status, against a real uvicorn server, Kafka and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskq.client import Client
from taskq.devstack import free_port
from taskq.settings import Settings
from tests.helpers import ApiServer as Api
from tests.helpers import Services, WorkerFactory, make_settings, wait_for


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    a = Api(settings)
    yield a.http
    a.close()


def _wait_status(http: httpx.Client, tid: str, status: str, timeout: float = 20) -> dict:  # type: ignore[type-arg]
    box: dict = {}  # type: ignore[type-arg]

    def check() -> bool:
        box.update(http.get(f"/api/tasks/{tid}").json())
        return box.get("status") == status

    wait_for(check, timeout=timeout, what=f"task {tid} to be {status}")
    return box


def test_submitted_task_runs_and_reads_back_with_every_field(api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    r = api.post("/api/tasks", json={"task": "add", "args": [1, 2]})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    t = _wait_status(api, r.json()["id"], "success")
    assert t["result"] == 3 and t["attempts"] == 1 and t["worker"] == "w1"
    for field in ("id", "task", "args", "kwargs", "status", "result", "error", "attempts", "worker",
                  "created_at", "started_at", "finished_at"):
        assert field in t
    assert t["history"][0]["worker"] == "w1" and t["history"][0]["outcome"] == "success"


def test_batch_submit_returns_every_id(api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    r = api.post("/api/tasks/batch", json=[{"task": "multiply", "args": [i, 2]} for i in range(10)])
    assert r.status_code == 202 and len(r.json()["ids"]) == 10
    t = _wait_status(api, r.json()["ids"][9], "success")
    assert t["result"] == 18
    assert api.post("/api/tasks/batch", json=[]).status_code == 422


def test_unknown_task_name_is_422_listing_the_known_ones(api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    r = api.post("/api/tasks", json={"task": "nope"})
    assert r.status_code == 422
    assert r.json()["detail"] == "unknown task 'nope'; known: add, echo, fail, multiply, sleep, sub"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({}, "task: Field required"),
        ({"task": "add", "args": "1,2"}, "args: Input should be a valid list"),
        ({"task": "add", "kwargs": [1]}, "kwargs: Input should be a valid dictionary"),
        ({"task": "add", "bogus": 1}, "bogus: Extra inputs are not permitted"),
        ({"task": "add", "timeout": -1}, "timeout: Input should be greater than 0"),
        ({"task": "add", "max_retries": 5000}, "max_retries: Input should be less than or equal to 1000"),
        ({"task": ""}, "task: String should have at least 1 character"),
    ],
)
def test_bad_bodies_are_422_saying_what_is_wrong(api: httpx.Client, body: dict, why: str) -> None:  # type: ignore[type-arg]
    r = api.post("/api/tasks", json=body)
    assert r.status_code == 422
    assert why in r.json()["detail"]


def test_invalid_json_is_422(api: httpx.Client) -> None:
    r = api.post("/api/tasks", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]


def test_oversize_body_is_413(services: Services) -> None:
    a = Api(make_settings(services, max_body_bytes=2048))
    try:
        r = a.http.post("/api/tasks", json={"task": "echo", "args": ["x" * 5000]})
        assert r.status_code == 413 and "larger than the limit of 2048 bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            yield b'{"task": "echo", "args": ["'
            for _ in range(10):
                yield b"y" * 500
            yield b'"]}'

        r = a.http.post("/api/tasks", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
    finally:
        a.close()


def test_unknown_id_is_404(api: httpx.Client) -> None:
    r = api.get("/api/tasks/0123456789abcdef")
    assert r.status_code == 404 and "not found" in r.json()["detail"]


def test_listing_is_newest_first_paginated_and_filtered(api: httpx.Client) -> None:
    ids = []
    for i in range(7):
        ids.append(api.post("/api/tasks", json={"task": "add" if i % 2 else "sub", "args": [i, 1]}).json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/tasks", params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    adds = api.get("/api/tasks", params={"task": "add"}).json()["items"]
    assert [t["id"] for t in adds] == [ids[5], ids[3], ids[1]]
    queued_subs = api.get("/api/tasks", params={"task": "sub", "status": "queued"}).json()["items"]
    assert len(queued_subs) == 4
    assert api.get("/api/tasks", params={"status": "bogus"}).status_code == 422
    assert api.get("/api/tasks", params={"limit": 0}).status_code == 422
    assert api.get("/api/tasks", params={"cursor": "not-a-cursor"}).status_code == 422


def test_cancel_a_queued_task_then_the_worker_skips_it(api: httpx.Client, start_worker: WorkerFactory) -> None:
    tid = api.post("/api/tasks", json={"task": "add", "args": [1, 1]}).json()["id"]  # no worker yet
    r = api.post(f"/api/tasks/{tid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert api.post(f"/api/tasks/{tid}/cancel").status_code == 409
    w = start_worker("w1")
    wait_for(lambda: f"Skipped Task ID: {tid} (cancelled)" in w.output(), timeout=20, what="the skip")
    assert api.get(f"/api/tasks/{tid}").json()["status"] == "cancelled"
    assert api.post("/api/tasks/nope/cancel").status_code == 404


def test_retry_runs_a_failed_task_again(api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    tid = api.post("/api/tasks", json={"task": "fail", "args": ["once"]}).json()["id"]
    _wait_status(api, tid, "failed")
    r = api.post(f"/api/tasks/{tid}/retry")
    # The worker may already have run the requeued message (and failed again) when the API reads the
    # record back: the retry set it queued first, so any of these is the new run's.
    assert r.status_code == 200 and r.json()["status"] in ("queued", "running", "failed")
    t = _wait_status(api, tid, "failed")
    assert t["attempts"] == 2 and len(t["history"]) == 2
    ok = api.post("/api/tasks", json={"task": "add", "args": [1, 1]}).json()["id"]
    _wait_status(api, ok, "success")
    assert api.post(f"/api/tasks/{ok}/retry").status_code == 409


def test_workers_task_types_stats_and_metrics(api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    tid = api.post("/api/tasks", json={"task": "add", "args": [2, 2]}).json()["id"]
    _wait_status(api, tid, "success")
    ws = api.get("/api/workers").json()
    assert ws[0]["id"] == "w1" and ws[0]["status"] == "alive" and ws[0]["processed"] == 1
    types = {t["name"]: t for t in api.get("/api/task-types").json()}
    assert types["add"]["signature"] == "add(a: float, b: float) -> float"
    assert [(p["name"], p["type"], p["required"]) for p in types["add"]["params"]] == [
        ("a", "float", True), ("b", "float", True)]
    meta = api.get("/api/meta").json()
    assert meta["terminal"] == ["cancelled", "dead", "failed", "success"]
    assert meta["cancellable"] == ["queued", "retrying"] and meta["limits"]["max_retries"] == 1000
    stats = api.get("/api/stats").json()
    assert stats["counts"]["success"] == 1 and stats["workers_alive"] == 1
    assert stats["throughput"]["success"] > 0 and stats["lag"] is not None
    wait_for(lambda: api.get("/api/stats").json()["lag_total"] == 0, timeout=10, what="the offset commit")
    metrics = api.get("/metrics").text
    assert 'taskq_tasks_submitted_total{task="add"} 1.0' in metrics
    assert 'taskq_workers{status="alive"} 1.0' in metrics
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ok", "redis": "ok", "kafka": "ok"}


def test_token_is_required_when_configured(services: Services) -> None:
    a = Api(make_settings(services, api_token="s3cret"))
    try:
        r = a.http.get("/api/workers")
        assert r.status_code == 401 and "Bearer" in r.json()["detail"]
        assert a.http.get("/api/workers", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert a.http.get("/api/workers", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert a.http.post("/api/tasks", json={"task": "add"}).status_code == 401
        assert a.http.get("/healthz").status_code == 200
    finally:
        a.close()


def test_kafka_down_is_503_and_readyz_says_which(services: Services) -> None:
    a = Api(make_settings(services, kafka_bootstrap=f"127.0.0.1:{free_port()}", submit_timeout=2.0), topics=False)
    try:
        r = a.http.post("/api/tasks", json={"task": "add", "args": [1, 2]})
        assert r.status_code == 503 and "Kafka" in r.json()["detail"]
        assert a.http.get("/api/tasks").json()["items"] == []
        ready = a.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["redis"] == "ok" and ready.json()["kafka"].startswith("Kafka is unreachable")
    finally:
        a.close()


def test_readyz_tells_why_only_to_a_caller_with_a_token(services: Services) -> None:
    port = free_port()
    a = Api(make_settings(services, kafka_bootstrap=f"127.0.0.1:{port}", api_token="s3cret-token"), topics=False)
    try:
        anonymous = a.http.get("/readyz")
        assert anonymous.status_code == 503
        assert anonymous.json() == {"status": "unavailable", "redis": "ok", "kafka": "unavailable"}
        assert str(port) not in anonymous.text
        told = a.http.get("/readyz", headers={"Authorization": "Bearer s3cret-token"}).json()
        assert told["kafka"].startswith("Kafka is unreachable") and told["redis"] == "ok"
    finally:
        a.close()


def test_redis_down_is_503(services: Services) -> None:
    a = Api(make_settings(services, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        r = a.http.get("/api/tasks/abc")
        assert r.status_code == 503 and "Redis is unreachable" in r.json()["detail"]
    finally:
        a.close()


REFUSED = [
    ('{"task": "echo", "args": [NaN, 1]}', "args[0]: nan is not a number JSON can carry"),
    ('{"task": "echo", "args": [Infinity]}', "args[0]: inf is not a number JSON can carry"),
    ('{"task": "echo", "args": [-Infinity]}', "args[0]: -inf is not a number JSON can carry"),
    ('{"task": "echo", "args": [1e309, 1]}', "args[0]: inf is not a number JSON can carry"),
    ('{"task": "echo", "args": [123456789012345678901234567890]}', "does not fit in 64 bits"),
    ('{"task": "echo", "args": [-9223372036854775809]}', "does not fit in 64 bits"),
    ('{"task": "echo", "kwargs": {"a": {"b": [NaN]}}}', "kwargs['a']['b'][0]: nan"),
]
ACCEPTED = [
    [9223372036854775807, -9223372036854775808, 18446744073709551615],
    [1.5e308, -0.0, 0.1, 5e-324],
    ["NaN", "Infinity", "\u00e9\u4e2d\U0001f600", ""],
    [[1, [2, [3, {"k": None}]]], {"x": True, "y": False}],
]


@pytest.mark.parametrize(("raw", "why"), REFUSED)
def test_values_json_cannot_carry_are_refused_with_422(api: httpx.Client, start_worker: WorkerFactory,
                                                        raw: str, why: str) -> None:
    start_worker("w1")
    r = api.post("/api/tasks", content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"]
    assert api.get("/api/tasks").json()["items"] == []  # nothing was left behind


def test_accepted_arguments_run_exactly_as_submitted(api: httpx.Client, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    ids = [api.post("/api/tasks", json={"task": "echo", "args": args}).json()["id"] for args in ACCEPTED]
    for tid, args in zip(ids, ACCEPTED, strict=True):
        rec = _wait_status(api, tid, "success")
        assert rec["args"] == args and rec["result"] == args


def test_head_answers_on_the_paths_load_balancers_probe(api: httpx.Client) -> None:
    for path in ("/", "/healthz", "/readyz"):
        r = api.head(path)
        assert r.status_code in (200, 307), (path, r.status_code)
        assert r.content == b""


def test_a_task_a_worker_started_advertising_a_moment_ago_is_accepted_at_once(
    api: httpx.Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # The API caches the advertised names; a name it has not seen yet makes it look again.
    marker = str(tmp_path / "m")  # the task writes it: never into the checkout
    start_worker("w1")
    assert api.post("/api/tasks", json={"task": "add", "args": [1, 2]}).status_code == 202
    assert api.post("/api/tasks", json={"task": "flaky", "args": [marker, 0]}).status_code == 422
    start_worker("w2", extra=["--tasks", "tests.sample_tasks"])
    res = api.post("/api/tasks", json={"task": "flaky", "args": [marker, 0]})
    assert res.status_code == 202, res.text


def test_the_sdk_facade_reads_what_the_api_shows(client: Client, start_worker: WorkerFactory) -> None:
    """Workers, task types, listings, stats and readiness come from Client, as the API and CLI use them."""
    start_worker("w1")
    tid = client.submit("add", 1, 2)
    assert client.wait(tid, timeout=20).result == 3
    assert [w.id for w in client.workers() if w.status == "alive"] == ["w1"]
    assert "add" in client.task_types() and client.known_tasks(["add"]) is not None
    assert [r.id for r in client.list_tasks(task="add").items] == [tid]
    stats = client.stats()
    assert stats.counts["success"] == 1 and stats.workers_alive == 1 and stats.lag is not None
    assert client.ready() == {"redis": "ok", "kafka": "ok"}
    first = client.lag(max_age=60)
    assert client.lag(max_age=60) == first  # reused, not asked of Kafka again
