"""Chains, groups and chords against real Kafka, Redis and worker processes: results flow, callbacks
fire exactly once (also when the worker that finished the last member is SIGKILLed at once, and
across a Redis restart), failure policies, cancel, retry from the failed step, the API and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskq import Client, TaskStateError, chain, chord, group, sig
from taskq.devstack import RedisServer, free_port
from taskq.kafka import ensure_topics
from taskq.models import TaskState
from taskq.settings import Settings
from tests.helpers import ApiServer, WorkerFactory, settings_env, wait_for

TASKS = ["--tasks", "tests.sample_tasks"]


def _lines(path: Path) -> list[object]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_chain_passes_each_result_to_the_next_step_and_ends_with_the_last(
    client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1")
    ref = client.submit(chain(sig("add", 1, 2), sig("add", 10), sig("multiply", 2)))
    rec = ref.wait(timeout=30)  # type: ignore[attr-defined]
    assert (rec.status, rec.result) == ("success", 26)
    tasks = [n for n in rec.nodes if n.kind == "task"]
    assert [(n.task, n.state, n.result) for n in tasks] == [
        ("add", "success", 3), ("add", "success", 13), ("multiply", "success", 26)]
    step = client.get(tasks[1].task_id or "")
    assert step.args == [3, 10] and step.workflow == ref and step.attempts == 1


def test_chord_callback_gets_the_member_results_in_order_and_fires_once(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker("w1", concurrency=8, extra=TASKS)
    marker = tmp_path / "callback"
    # Members finish out of order (longer sleeps first); the results keep the members' order.
    members = [chain(sig("sleep", 0.05 * (8 - i)), sig("add", i, _immutable=False)) for i in range(8)]
    rec = client.wait_workflow(client.submit(chord(members, sig("collect", str(marker)))), timeout=30)
    expected = [round(0.05 * (8 - i), 2) + i for i in range(8)]
    assert rec.status == "success"
    assert [round(x, 2) for x in rec.result] == expected
    assert [[round(x, 2) for x in line] for line in _lines(marker)] == [expected]  # type: ignore[union-attr]


def test_member_failure_policies_fail_skip_or_run_the_callback(client: Client, start_worker: WorkerFactory) -> None:
    start_worker("w1", concurrency=6)
    members = [sig("add", 1, 1), sig("fail", "no", _max_retries=0), sig("add", 2, 2)]
    ids = {p: client.submit(chord(members, sig("echo"), on_failure=p)) for p in ("fail", "skip", "run")}
    recs = {p: client.wait_workflow(w, timeout=30) for p, w in ids.items()}
    failed = recs["fail"]
    assert failed.status == "failed" and failed.failed_task_id == f"{ids['fail']}-4"
    assert "fail" in (failed.error or "") and "no" in (failed.error or "")
    assert failed.nodes[-1].state is None  # the callback never started
    assert (recs["skip"].status, recs["skip"].result) == ("success", [[2, 4]])
    outcomes = recs["run"].result[0]
    assert recs["run"].status == "success"
    assert outcomes[0] == {"status": "success", "result": 2} and outcomes[2] == {"status": "success", "result": 4}
    assert outcomes[1]["status"] in ("failed", "dead") and "no" in outcomes[1]["error"]


def test_nested_chains_of_groups_and_groups_of_chains(client: Client, start_worker: WorkerFactory) -> None:
    start_worker("w1", concurrency=6)
    wf = chain(
        sig("add", 1, 1),
        group(chain(sig("add", 1), sig("multiply", 10)), sig("add", 100)),
        sig("echo"),
    )
    rec = client.wait_workflow(client.submit(wf), timeout=30)
    assert (rec.status, rec.result) == ("success", [[30, 102]])


def test_cancel_stops_a_workflow_queued_steps_are_cancelled_and_nothing_more_starts(
    client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1", concurrency=1)
    wid = client.submit(chain(group(*[sig("sleep", 1.0)] * 3), sig("add", 1)))
    members = [f"{wid}-{i}" for i in (3, 4, 5)]
    # One slot: one member runs, the other two wait queued (in whichever order Kafka hands them out).
    wait_for(lambda: any(client.get(m).status is TaskState.RUNNING for m in members), timeout=20,
             what="a member to run")
    rec = client.cancel_workflow(wid)
    assert rec.status == "cancelled"
    wait_for(lambda: all(client.get(m).status.terminal for m in members), timeout=20, what="every member to end")
    assert sorted(client.get(m).status.value for m in members) == ["cancelled", "cancelled", "success"]
    rec = client.workflow(wid)
    assert rec.status == "cancelled" and rec.nodes[5].state is None  # the step after the group never started
    with pytest.raises(TaskStateError, match="only a running workflow"):
        client.cancel_workflow(wid)


def test_a_failed_workflow_runs_again_from_the_failed_step_keeping_earlier_results(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker("w1", extra=TASKS)
    marker = str(tmp_path / "flaky")
    wid = client.submit(chain(sig("add", 1, 1), sig("flaky", marker, 1, _max_retries=0, _immutable=True),
                              sig("echo")))
    rec = client.wait_workflow(wid, timeout=30)
    assert rec.status == "failed" and rec.failed_task_id == f"{wid}-3"
    with pytest.raises(TaskStateError, match="only a failed workflow"):
        client.retry_workflow(client.submit(chain(sig("add", 0, 0))))
    client.retry_workflow(wid)
    rec = client.wait_workflow(wid, timeout=30)
    assert (rec.status, rec.result) == ("success", ["ok after 2 runs"])
    assert client.get(f"{wid}-2").attempts == 1  # the step that succeeded did not run again


def test_retrying_a_failed_member_task_reopens_its_workflow_unless_it_went_on_without_it(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker("w1", extra=TASKS)
    marker = str(tmp_path / "flaky")
    wid = client.submit(chord([sig("add", 1, 1), sig("flaky", marker, 1, _max_retries=0)], sig("echo")))
    assert client.wait_workflow(wid, timeout=30).status == "failed"
    client.retry(f"{wid}-4")  # the member task itself, as the UI's Retry button does
    rec = client.wait_workflow(wid, timeout=30)
    assert (rec.status, rec.result) == ("success", [[2, "ok after 2 runs"]])

    skipped = client.submit(chord([sig("add", 1, 1), sig("fail", _max_retries=0)], sig("echo"), on_failure="skip"))
    assert client.wait_workflow(skipped, timeout=30).status == "success"
    with pytest.raises(TaskStateError, match="went on without it"):
        client.retry(f"{skipped}-4")


def test_callback_fires_once_when_the_worker_that_finished_the_last_member_is_killed_at_once(
    client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    a = start_worker("wa", concurrency=8, extra=TASKS)
    marker = tmp_path / "callback"
    # The callback sleeps before it counts its run: if wa took it, wa dies inside it.
    wid = client.submit(chord([sig("add", i, i) for i in range(8)], sig("collect", str(marker), 1.0)))
    wait_for(lambda: all(client.get(f"{wid}-{i}").status is TaskState.SUCCESS for i in range(3, 11)),
             timeout=30, what="every member to succeed", interval=0.005)
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    start_worker("wb", extra=TASKS)
    rec = client.wait_workflow(wid, timeout=60)
    assert (rec.status, rec.result) == ("success", [2 * i for i in range(8)])
    assert _lines(marker) == [[2 * i for i in range(8)]]
    # Members redelivered to wb were skipped, not run again.
    assert all(client.get(f"{wid}-{i}").attempts == 1 for i in range(3, 11))


def test_a_chain_finishes_across_a_redis_restart_with_each_step_run_once(
    settings: Settings, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    redis = RedisServer(data_dir=tmp_path / "redis", port=free_port())
    redis.start()
    s = settings.model_copy(update={"redis_url": redis.url})
    try:
        ensure_topics(s)
        start_worker("w1", settings_=s, extra=TASKS)
        marker = tmp_path / "runs"
        with Client(s) as client:
            steps = [sig("sleep", 0.4, _immutable=True) for _ in range(4)]
            wid = client.submit(chain(*steps, sig("collect", [], str(marker), _immutable=True)))
            wait_for(lambda: client.workflow(wid).nodes[2].state == "success", timeout=20, what="step 2 to finish")
            redis.stop()  # SIGTERM: Redis writes its AOF and exits
            redis.start()
            rec = client.wait_workflow(wid, timeout=60)
            assert rec.status == "success", rec
            assert _lines(marker) == [[]]
            assert [client.get(f"{wid}-{i}").attempts for i in range(2, 7)] == [1, 1, 1, 1, 1]
    finally:
        redis.stop()


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    a = ApiServer(settings)
    yield a.http
    a.close()


def test_http_api_starts_reads_lists_cancels_and_retries_workflows_with_clear_errors(
    api: httpx.Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1")
    wait_for(lambda: "add" in {t["name"] for t in api.get("/api/task-types").json()}, timeout=20,
             what="the worker's task types")
    body = {"chord": [{"task": "add", "args": [1, 2]}, {"task": "add", "args": [3, 4]}], "callback": {"task": "echo"}}
    res = api.post("/api/workflows", json=body)
    assert res.status_code == 202, res.text
    wid = res.json()["id"]
    wait_for(lambda: api.get(f"/api/workflows/{wid}").json()["status"] == "success", timeout=30, what="success")
    got = api.get(f"/api/workflows/{wid}").json()
    assert got["result"] == [[3, 7]]
    assert [n["kind"] for n in got["nodes"]] == ["chain", "group", "task", "task", "task"]
    assert got["nodes"][2]["task_id"] == f"{wid}-3"
    assert wid in [w["id"] for w in api.get("/api/workflows").json()]
    assert api.get(f"/api/tasks/{wid}-3").json()["workflow"] == wid

    assert api.post(f"/api/workflows/{wid}/cancel").status_code == 409
    assert api.post(f"/api/workflows/{wid}/retry").status_code == 409
    assert api.get("/api/workflows/nope").status_code == 404
    for bad, says in [({"chain": [{"task": "nosuch"}]}, "unknown task(s) 'nosuch'"),
                      ({"group": []}, "a group needs at least one step"),
                      ({"task": "add", "args": [1, 2], "oops": 1}, "unknown field(s) oops"),
                      ([1], "expected an object")]:
        res = api.post("/api/workflows", json=bad)
        assert res.status_code == 422 and says in res.json()["detail"], (bad, res.text)
    res = api.post("/api/workflows", content=b'{"task": "add", "args": [NaN, 1]}',
                   headers={"Content-Type": "application/json"})
    assert res.status_code == 422


def _cli(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskq", *args], env=settings_env(settings), input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_cli_submits_waits_shows_the_tree_and_lists_workflows(settings: Settings, start_worker: WorkerFactory) -> None:
    start_worker("w1")
    spec = json.dumps({"chain": [{"task": "add", "args": [1, 2]}, {"task": "multiply", "args": [3]}]})
    res = _cli(settings, "workflow", "--submit", "-", "--wait", "--json", stdin=spec)
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert (rec["status"], rec["result"]) == ("success", 9)
    tree = _cli(settings, "workflow", rec["id"])
    assert tree.returncode == 0 and "success = 9" in tree.stdout and "multiply success" in tree.stdout
    listing = _cli(settings, "workflows")
    assert rec["id"] in listing.stdout and "2/2" in listing.stdout
    bad = _cli(settings, "workflow", "--submit", "{not json")
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    missing = _cli(settings, "workflow", "nope")
    assert missing.returncode == 1 and "workflow 'nope' not found" in missing.stderr
    neither = _cli(settings, "workflow")
    assert neither.returncode == 2
