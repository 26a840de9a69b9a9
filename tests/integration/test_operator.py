"""Operator controls against real Kafka, Redis and workers: pausing a task type cluster-wide (held,
kept, run in order once resumed) and quieting a worker (it finishes its runs, hands its partitions
over, takes none until resumed) — from the SDK, the API and the CLI."""

from __future__ import annotations

from taskq import Client
from taskq.models import TaskState
from taskq.settings import Settings
from tests.helpers import ApiServer, WorkerFactory, keys_on, run_cli, wait_all, wait_for

TASKS = ["--tasks", "tests.flow_tasks"]


_cli = run_cli


def test_a_paused_task_type_is_held_in_order_and_runs_once_resumed(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    w1 = start_worker("w1", concurrency=1, extra=TASKS)
    res = _cli(settings, "pause", "free")
    assert res.returncode == 0 and res.stdout.startswith("free paused"), res.stderr
    held = [client.submit("free", i) for i in range(20)]
    other = client.submit("whoami")
    assert client.wait(other, timeout=30).status is TaskState.SUCCESS  # other types keep running
    wait_for(lambda: client.paused_task_types() == {"free": 20}, timeout=30, what="twenty held tasks")
    assert {client.get(t).status for t in held} == {TaskState.QUEUED}
    assert client.get(held[0]).waiting_for == "paused" and client.get(held[0]).attempts == 0
    types = client.task_types()
    assert types["free"].paused and types["free"].held == 20 and not types["whoami"].paused
    w1.proc.terminate()  # resumed with no worker running: what is released can be looked at
    w1.proc.wait(timeout=30)
    res = _cli(settings, "pause", "free", "--resume")
    assert res.returncode == 0 and "20 held task(s) released" in res.stdout, res.stdout + res.stderr
    due = client.store.r.zrange(client.store.key("scheduled"), 0, -1)
    assert due == held  # released oldest first, each due now
    start_worker("w2", concurrency=1, extra=TASKS)
    recs = wait_all(client, held, timeout=30)
    assert [r.result for r in recs] == list(range(20)) and all(r.attempts == 1 for r in recs)
    assert client.paused_task_types() == {}


def test_a_quiet_worker_finishes_its_runs_hands_its_partitions_over_and_resumes(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    w1 = start_worker("w1", concurrency=2, extra=TASKS)
    start_worker("w2", concurrency=2, extra=TASKS)
    parts = set(range(settings.partitions))
    wait_for(lambda: {p for w in client.workers() for p in w.partitions} == parts, timeout=60, what="both to own")
    mine = next(w.partitions for w in client.workers() if w.id == "w1")
    long = [client.submit("pause", 3.0, _key=k) for k in keys_on(mine, settings.partitions, 2)]
    long += [client.submit("pause", 3.0) for _ in range(2)]  # and two anywhere
    wait_for(lambda: any(client.get(t).worker == "w1" and client.get(t).status is TaskState.RUNNING for t in long),
             timeout=30, what="a long task on w1")
    on_w1 = [t for t in long if client.get(t).worker == "w1"]
    res = _cli(settings, "quiet", "w1")
    assert res.returncode == 0 and res.stdout.startswith("w1 quiet"), res.stderr

    def handed_over() -> bool:
        ws = {w.id: w for w in client.workers()}
        return ws["w1"].quiet and not ws["w1"].partitions and set(ws["w2"].partitions) == parts

    wait_for(handed_over, timeout=30, what="w1 quiet and w2 owning every partition")
    recs = wait_all(client, on_w1, timeout=30)
    assert all(r.status is TaskState.SUCCESS and r.worker == "w1" and r.attempts == 1 for r in recs)  # not re-run
    after = [client.submit("free", i) for i in range(20)]
    assert {r.worker for r in wait_all(client, after, timeout=30)} == {"w2"}
    assert "quiet: finished what was running" in w1.output()
    assert "quiet" in _cli(settings, "workers").stdout
    client.quiet_worker("w1", quiet=False)
    wait_for(lambda: any(w.id == "w1" and w.partitions and not w.quiet for w in client.workers()), timeout=60,
             what="w1 to rejoin")
    wait_all(client, long, timeout=30)


def test_operator_controls_over_http_answer_404_and_422_for_bad_names(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1", extra=TASKS)
    api = ApiServer(settings)
    try:
        assert api.http.post("/api/workers/nobody/quiet").status_code == 404
        assert "not found" in api.http.post("/api/workers/nobody/resume").json()["detail"]
        assert api.http.post("/api/task-types/9bad name/pause").status_code == 422
        for body, why in (({"task": "free", "priority": "urgent"}, "priority"),
                          ({"task": "free", "priority": "high"}, "needs the priority lanes"),
                          ({"task": "free", "rate_key": ""}, "rate_key")):
            got = api.http.post("/api/tasks", json=body)
            assert got.status_code == 422 and why in got.text, (body, got.text)
        assert api.http.post("/api/task-types/free/pause").json() == {"task": "free", "paused": True}
        tid = client.submit("free", 1)
        wait_for(lambda: client.get(tid).waiting_for == "paused", timeout=30, what="the task to be held")
        assert api.http.post("/api/task-types/free/resume").json() == {"task": "free", "paused": False, "released": 1}
        assert client.wait(tid, timeout=30).result == 1
        got = api.http.post("/api/workers/w1/quiet")
        assert got.status_code == 200 and got.json()["id"] == "w1"
        wait_for(lambda: next(w for w in client.workers() if w.id == "w1").quiet, timeout=10, what="w1 quiet")
        assert api.http.post("/api/workers/w1/resume").status_code == 200
    finally:
        api.close()


def test_per_type_metrics_count_outcomes_and_give_run_and_wait_percentiles(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1", concurrency=4, extra=TASKS)
    ok = [client.submit("pause", 0.06) for _ in range(20)]
    bad = [client.submit("fail", "no", _max_retries=0) for _ in range(5)]
    wait_all(client, ok + bad, timeout=60)
    failed = client.get(bad[0])  # the record keeps the whole traceback; the error is its last line
    assert failed.traceback and failed.traceback.startswith("Traceback (most recent call last)")
    assert (failed.error or "") in failed.traceback and client.get(ok[0]).traceback is None
    by_task = {m.task: m for m in client.type_metrics(window=300)}
    pause, fail = by_task["pause"], by_task["fail"]
    assert pause.counts == {"success": 20} and pause.finished == 20 and pause.failure_rate == 0
    assert fail.counts == {"failed": 5} and fail.failure_rate == 1
    # 60 ms of sleep plus the run's own overhead, read back within the sketch's 2 %.
    assert pause.run.relative_error == 0.02 and pause.run.p50 is not None
    assert pause.run.p50 * 1.02 >= 0.06 and pause.run.p50 <= 0.1, pause.run
    assert pause.run.p50 <= (pause.run.p95 or 0) <= (pause.run.p99 or 0) and 0.05 < (pause.run.mean or 0) < 0.5
    assert pause.wait.p99 is not None and pause.wait.p99 >= 0
    api = ApiServer(settings)
    try:
        got = api.http.get("/api/task-types/metrics", params={"window": "5m"})
        assert got.status_code == 200
        assert {m["task"]: m["counts"] for m in got.json()}["pause"] == {"success": 20}
        assert api.http.get("/api/task-types/metrics", params={"window": "2y"}).status_code == 422
    finally:
        api.close()
    table = _cli(settings, "metrics", "--window", "5m")
    assert table.returncode == 0 and "pause" in table.stdout and "100.0" in table.stdout, table.stderr
    wrong = _cli(settings, "metrics", "--window", "2y")
    assert wrong.returncode == 2 and "not one of 5m, 1h, 24h, 7d" in wrong.stderr
