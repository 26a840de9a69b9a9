"""Dead letters for operators, against real Kafka: the API, ``taskq dead`` and the client list them
newest first with their reason and position, give back the raw bytes, and replay one as a new task
(its own arguments, or corrected ones); a message that never decoded needs a task to replay as."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaProducer

from taskq.client import Client
from taskq.errors import DeadLetterNotFound, InvalidTask
from taskq.models import TaskState
from taskq.settings import Settings
from tests.helpers import ApiServer, WorkerFactory, run_cli, wait_for

pytestmark = pytest.mark.both_clients


def _poison(settings: Settings, value: bytes) -> None:
    p = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    try:
        p.send(settings.tasks_topic, value=value).get(timeout=30)
    finally:
        p.close()


def test_dead_letters_are_listed_downloaded_and_replayed_by_api_cli_and_client(
    settings: Settings, client: Client, start_worker: WorkerFactory
) -> None:
    start_worker("w1", concurrency=2)
    junk = b'{"v":1,"id":"bad","task":"add","args":' + b"[" * 40 + b"]" * 40 + b"}"
    _poison(settings, junk)
    wait_for(lambda: len(client.dead_letters()) >= 1, timeout=60, what="the dead letter of the junk message")
    letters = client.dead_letters()
    message = next(d for d in letters if d.kind == "message")
    assert "nested deeper than 32 levels" in message.reason and message.raw == junk
    assert message.source is not None and message.source.startswith(settings.tasks_topic)

    api = ApiServer(settings)
    try:
        listed = api.http.get("/api/dead-letters", params={"limit": 10}).json()["items"]
        row = next(d for d in listed if d["kind"] == "message")
        assert row["position"] == message.position and row["preview"].startswith('{"v":1,"id":"bad"')
        got = api.http.get(f"/api/dead-letters/{message.partition}/{message.offset}/raw")
        assert got.status_code == 200 and got.content == junk
        assert "attachment" in got.headers["content-disposition"]
        assert api.http.get("/api/dead-letters/0/999999").status_code == 404
        # A message that never decoded: replaying it needs the task and arguments to submit.
        refused = api.http.post(f"/api/dead-letters/{message.partition}/{message.offset}/replay")
        assert refused.status_code == 422 and "give the task and its arguments" in refused.json()["detail"]
        ok = api.http.post(f"/api/dead-letters/{message.partition}/{message.offset}/replay",
                           json={"task": "add", "args": [2, 3]})
        assert ok.status_code == 202
        assert client.wait(ok.json()["id"], timeout=60).result == 5
        assert api.http.post(f"/api/dead-letters/{message.partition}/{message.offset}/replay",
                             json={"task": "add", "args": "no"}).status_code == 422
    finally:
        api.close()

    out = run_cli(settings, "dead", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert message.position in {r["position"] for r in rows}
    shown = run_cli(settings, "dead", "raw", message.position)
    assert shown.returncode == 0 and shown.stdout.encode() == junk
    replayed = run_cli(settings, "dead", "replay", message.position, "--task", "add", "--args", "[20, 22]")
    assert replayed.returncode == 0, replayed.stderr
    assert client.wait(replayed.stdout.strip(), timeout=60).result == 42
    bad = run_cli(settings, "dead", "show", "nowhere")
    assert bad.returncode == 2 and "PARTITION:OFFSET" in bad.stderr
    missing = run_cli(settings, "dead", "show", "0:999999")
    assert missing.returncode == 1 and "no dead letter at 0:999999" in missing.stderr

    with pytest.raises(DeadLetterNotFound):
        client.dead_letter(0, 999_999)
    with pytest.raises(InvalidTask):
        client.replay_dead_letter(message.partition, message.offset)


def test_a_dead_task_is_replayed_with_its_own_arguments(client: Client, start_worker: WorkerFactory,
                                                        tmp_path: Path) -> None:
    start_worker("w1", concurrency=2, extra=["--tasks", "tests.sample_tasks"])
    tid = client.submit("flaky", str(tmp_path / "runs"), 100, _max_retries=1)
    rec = client.wait(tid, timeout=60)
    assert rec.status is TaskState.DEAD, rec
    wait_for(lambda: any(d.task_id == tid for d in client.dead_letters()), timeout=60, what="its dead letter")
    d = next(d for d in client.dead_letters() if d.task_id == tid)
    assert d.kind == "task" and d.reason == "retries exhausted" and d.args == rec.args
    again = client.replay_dead_letter(d.partition, d.offset)
    assert again != tid and client.wait(again, timeout=60).args == rec.args
