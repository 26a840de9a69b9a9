"""Scraped Prometheus values match what really happened (real tasks, a killed worker)."""

from __future__ import annotations

import re

import httpx

from taskq.client import Client, TaskRequest
from taskq.devstack import free_port
from taskq.models import TaskState
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import ApiServer, WorkerFactory, wait_all, wait_for


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_worker_metrics_count_successes_failures_retries_and_dead_letters(
    client: Client, start_worker: WorkerFactory
) -> None:
    port = free_port()
    start_worker("m1", extra=["--metrics-port", str(port)])
    # Before any run: every task the worker can run has its series at 0, so the first dead letter
    # or retry of a task shows as an increase (a series born at 1 shows none).
    wait_for(lambda: scrape(port).get('taskq_tasks_dead_lettered_total{task="fail",worker="m1"}') == 0,
             timeout=10, what="the worker's metrics")
    first = scrape(port)
    assert first['taskq_tasks_finished_total{status="dead",task="sleep",worker="m1"}'] == 0
    assert first['taskq_tasks_redelivered_total{task="add",worker="m1"}'] == 0
    # So is a message that is no task at all: the dashboard's dead letters see the first one too.
    assert first['taskq_tasks_dead_lettered_total{task="(undecodable)",worker="m1"}'] == 0
    assert first['taskq_invalid_messages_total{reason="too_deep",worker="m1"}'] == 0
    ok = client.submit_many([TaskRequest("add", (i, 1)) for i in range(10)])
    bad = client.submit("fail", "x")
    dead = client.submit("fail", "y", _max_retries=1)
    wait_all(client, [*ok, bad, dead], timeout=30)
    wait_for(lambda: scrape(port).get('taskq_tasks_dead_lettered_total{task="fail",worker="m1"}') == 1,
             timeout=10, what="the dead letter to be counted")
    m = scrape(port)
    assert m['taskq_tasks_finished_total{status="success",task="add",worker="m1"}'] == 10
    assert m['taskq_tasks_finished_total{status="failed",task="fail",worker="m1"}'] == 1
    assert m['taskq_tasks_finished_total{status="retried",task="fail",worker="m1"}'] == 1
    assert m['taskq_tasks_finished_total{status="dead",task="fail",worker="m1"}'] == 1
    assert m['taskq_tasks_started_total{task="fail",worker="m1"}'] == 3
    assert m['taskq_task_run_seconds_count{task="add"}'] == 10
    assert m['taskq_task_wait_seconds_count{task="add"}'] == 10
    assert m['taskq_worker_concurrency{worker="m1"}'] == 4
    assert m['taskq_worker_partitions{worker="m1"}'] == 6
    assert m['taskq_worker_tasks_in_flight{worker="m1"}'] == 0


def test_survivor_counts_the_redelivered_tasks_of_a_killed_worker(
    client: Client, store: Store, start_worker: WorkerFactory
) -> None:
    p1, p2 = free_port(), free_port()
    a = start_worker("k1", extra=["--metrics-port", str(p1)])
    start_worker("k2", extra=["--metrics-port", str(p2)])
    ids = client.submit_many([TaskRequest("sleep", (2,)) for _ in range(16)])
    wait_for(lambda: any(r.worker == "k1" for r in store.list_tasks(status=TaskState.RUNNING).items),
             timeout=20, what="k1 to run tasks")
    a.kill()
    records = wait_all(client, ids, timeout=60)
    redelivered = sum(1 for r in records if r.attempts == 2)
    assert redelivered > 0
    m = scrape(p2)
    assert m['taskq_tasks_redelivered_total{task="sleep",worker="k2"}'] == redelivered


def test_worker_serves_healthz_for_liveness_probes(start_worker: WorkerFactory) -> None:
    port = free_port()
    start_worker("h1", extra=["--metrics-port", str(port)])
    r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert r.status_code == 200 and r.text == "ok"
    assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404


def test_an_api_scrape_alone_reports_the_consumer_lag(settings: Settings, start_worker: WorkerFactory) -> None:
    # The group must exist for Kafka to report its lag: a worker joins, commits, and stops.
    w = start_worker("w1")
    w.terminate()
    assert w.wait() == 0
    api = ApiServer(settings)
    try:
        with Client(settings) as client:
            client.submit_many([TaskRequest("add", (i, 1)) for i in range(7)])
        # No worker and no /api/stats call: the scrape itself asks Kafka.
        text = api.http.get("/metrics").text
        total = re.search(r'^taskq_consumer_lag_total\{topic="[^"]+"\} (\S+)$', text, re.M)
        assert total is not None and float(total.group(1)) == 7, text[-2000:]
    finally:
        api.close()
