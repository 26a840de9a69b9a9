"""Unreachable Kafka or Redis: one clear error, nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taskq.client import Client
from taskq.devstack import free_port
from taskq.errors import BrokerUnavailable, StoreUnavailable
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import Services, WorkerFactory, make_settings, settings_env


def test_submit_with_kafka_down_raises_and_leaves_no_queued_record(services: Services) -> None:
    s = make_settings(services, kafka_bootstrap=f"127.0.0.1:{free_port()}", submit_timeout=2.0)
    with Client(s) as client, pytest.raises(BrokerUnavailable, match="Kafka"):
        client.submit("add", 1, 2)
    store = Store(s)
    assert store.counts()["queued"] == 0
    assert store.list_tasks(limit=10).items == []
    store.close()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskq", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=60)


def test_cli_submit_with_kafka_down_prints_one_line_and_exits_non_zero(services: Services) -> None:
    s = make_settings(services, kafka_bootstrap=f"127.0.0.1:{free_port()}", submit_timeout=2.0)
    res = _cli(s, "submit", "add", "1", "2")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kafka"), res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_cli_status_with_redis_down_prints_one_line_and_exits_non_zero(services: Services) -> None:
    s = make_settings(services, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    res = _cli(s, "status", "abc")
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: Redis is unreachable"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_status_of_unknown_id_says_not_found(settings: Settings) -> None:
    res = _cli(settings, "status", "does-not-exist")
    assert res.returncode == 1
    assert "task 'does-not-exist' not found" in res.stderr


def test_cli_rejects_bad_kwargs_json_with_usage_exit_code(settings: Settings) -> None:
    res = _cli(settings, "submit", "add", "--kwargs", "{not json")
    assert res.returncode == 2
    assert "--kwargs is not valid JSON" in res.stderr


def test_store_reports_redis_down_as_store_unavailable(services: Services) -> None:
    s = make_settings(services, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable):
        Store(s).get("x")


def test_a_submit_kafka_accepted_while_redis_is_down_returns_its_id_and_the_task_still_runs(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    # Kafka acknowledged it, so it is enqueued: raising would make the caller submit it twice.
    no_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with Client(no_redis) as blind:
        task_id = blind.submit("add", 20, 22)
    start_worker("w1")
    assert client.wait(task_id, timeout=60).result == 42  # the worker created the record when it started it
