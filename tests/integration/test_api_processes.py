"""``taskq api --workers N``: several API processes on one port, their metrics summed; and
``TASKQ_API_METRICS_PORT``: /metrics on a port of its own, and only there."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from taskq.devstack import free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.settings import Settings
from tests.helpers import WorkerFactory, settings_env, wait_for


def _submitted(text: str) -> float:
    m = re.search(r'^taskq_tasks_submitted_total\{task="add"\} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("own_metrics_port", [False, True], ids=["metrics-on-the-api-port", "metrics-port"])
def test_two_api_processes_share_the_port_and_every_scrape_counts_the_submissions_of_both(
    settings: Settings, start_worker: WorkerFactory, tmp_path: Path, own_metrics_port: bool
) -> None:
    ensure_topics(settings)
    start_worker("w1")
    port = free_port()
    metrics_port = free_port() if own_metrics_port else port
    if own_metrics_port:
        settings = settings.model_copy(update={"api_metrics_port": metrics_port})
    log = tmp_path / "api.log"
    with log.open("wb") as fh:
        proc = spawn([sys.executable, "-m", "taskq", "api", "--port", str(port), "--workers", "2"],
                     env=settings_env(settings), stdout=fh)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), timeout=60,
                 what=f"the API processes to be ready ({log.read_text(errors='replace')})")
        ids = []
        for i in range(40):  # a new connection each time: the kernel spreads them over both processes
            r = httpx.post(f"{url}/api/tasks", json={"task": "add", "args": [i, 1]}, timeout=10)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for tid in ids:
            wait_for(lambda t=tid: httpx.get(f"{url}/api/tasks/{t}", timeout=5).json()["status"] == "success",
                     timeout=30, what=f"task {tid}")
        for _ in range(6):  # whichever process answers the scrape reports the total of both
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            assert _submitted(text) == 40.0, text
            assert 'taskq_workers{status="alive"} 1.0' in text
        if own_metrics_port:
            assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404
    finally:
        stop_process(proc, timeout=20)
    assert proc.returncode is not None


def test_with_a_metrics_port_metrics_are_served_there_and_nowhere_else(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as fh:
        proc = spawn([sys.executable, "-m", "taskq", "api", "--port", str(port)],
                     env=settings_env(settings.model_copy(update={"api_metrics_port": metrics_port})), stdout=fh)
    url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    try:
        wait_for(lambda: _ready(url), timeout=60, what=f"the API to be ready ({log.read_text(errors='replace')})")
        scrape = httpx.get(f"{metrics_url}/metrics", timeout=5)
        assert scrape.status_code == 200 and "taskq_api_" in scrape.text
        assert httpx.get(f"{metrics_url}/healthz", timeout=5).status_code == 200
        moved = httpx.get(f"{url}/metrics", timeout=5)
        assert moved.status_code == 404 and f"port {metrics_port}" in moved.json()["detail"]
        for path in ("/api/tasks", "/readyz", "/ui/", "/api/docs"):  # the metrics port is only that
            assert httpx.get(f"{metrics_url}{path}", timeout=5).status_code == 404, path
        assert httpx.get(f"{url}/api/tasks", timeout=5).status_code == 200
    finally:
        stop_process(proc, timeout=20)
    assert proc.returncode is not None
