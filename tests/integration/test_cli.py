"""The CLI contract against a running worker: submit --wait, submit, status, workers."""

from __future__ import annotations

import json

from taskq.kafka import ensure_topics
from taskq.settings import Settings
from tests.helpers import WorkerFactory, run_cli, wait_for


def test_submit_wait_prints_the_result_and_the_worker_logs_classic_lines(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    # The seed's lines with their args and results, as taskq dev shows them (TASKQ_LOG_ARGS).
    w = start_worker("worker2", settings_=settings.model_copy(update={"log_args": True}))
    res = run_cli(settings, "submit", "add", "1", "2", "--wait")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3"
    res = run_cli(settings, "submit", "multiply", "4", "5")
    tid, state = res.stdout.split()
    assert state == "queued" and len(tid) == 32
    run_cli(settings, "submit", "add", "0", "0", "--wait")
    status = run_cli(settings, "status", tid, "--json")
    rec = json.loads(status.stdout)
    assert rec["status"] == "success" and rec["result"] == 20
    text = run_cli(settings, "status", tid).stdout
    assert "status:    success" in text and "result:    20" in text
    out = w.output()
    assert f"[worker2] Received Task ID: {tid} | Task: multiply | Args: [4, 5]" in out
    assert "[worker2] Task Completed: Result = 20" in out


def test_workers_lists_alive_workers_with_partitions(settings: Settings, start_worker: WorkerFactory) -> None:
    start_worker("wa")
    start_worker("wb")

    def listed() -> dict:  # type: ignore[type-arg]
        return {w["id"]: w for w in json.loads(run_cli(settings, "workers", "--json").stdout)}

    # Cooperative rebalancing moves partitions in two rounds: wait for the second one.
    wait_for(lambda: sorted(p for w in listed().values() for p in w["partitions"]) == list(range(settings.partitions)),
             timeout=30, what="wa and wb to share every partition")
    ws = listed()
    assert ws["wa"]["status"] == ws["wb"]["status"] == "alive"
    assert sorted(ws["wa"]["partitions"] + ws["wb"]["partitions"]) == list(range(settings.partitions))
    table = run_cli(settings, "workers").stdout
    assert "wa" in table and "alive" in table and "PARTITIONS" in table


def test_top_shows_counts_workers_and_last_failures(settings: Settings, start_worker: WorkerFactory) -> None:
    start_worker("wt")
    run_cli(settings, "submit", "fail", "kaput", "--wait")
    res = run_cli(settings, "top", "--once")
    assert res.returncode == 0, res.stderr
    assert "failed 1" in res.stdout and "wt" in res.stdout and "RuntimeError: kaput" in res.stdout


def test_submit_options_delay_time_limit_and_idempotency(settings: Settings, start_worker: WorkerFactory) -> None:
    start_worker("wo")
    a = run_cli(settings, "submit", "add", "1", "1", "--idempotency-key", "k1").stdout.split()[0]
    b = run_cli(settings, "submit", "add", "1", "1", "--idempotency-key", "k1").stdout.split()[0]
    assert a == b
    res = run_cli(settings, "submit", "sleep", "5", "--time-limit", "0.5", "--wait")
    assert res.returncode == 1 and "exceeded its time limit of 0.5s" in res.stderr
    res = run_cli(settings, "submit", "add", "2", "2", "--delay", "1", "--wait", "--json")
    rec = json.loads(res.stdout)
    assert rec["result"] == 4 and rec["started_at"] - rec["created_at"] >= 1
    assert run_cli(settings, "submit", "add", "1", "--delay", "-1").returncode == 2


def test_cancel_and_retry_print_the_new_status_and_refuse_wrong_states(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    ensure_topics(settings)  # no worker has created them yet
    queued = run_cli(settings, "submit", "add", "1", "1").stdout.split()[0]  # no worker yet: stays queued
    assert run_cli(settings, "cancel", queued).stdout.strip() == f"{queued} cancelled"
    again = run_cli(settings, "cancel", queued)
    assert again.returncode == 1 and "only queued, retrying or running tasks can be cancelled" in again.stderr
    assert run_cli(settings, "retry", queued).stdout.strip() == f"{queued} queued"  # still no worker
    start_worker("wr")
    wait_for(lambda: json.loads(run_cli(settings, "status", queued, "--json").stdout)["status"] == "success",
             timeout=30, what="the retried task to run")
    assert run_cli(settings, "retry", queued).returncode == 1
    assert "not found" in run_cli(settings, "cancel", "nope").stderr
