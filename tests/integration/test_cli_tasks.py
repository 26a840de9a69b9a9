"""``taskq list``, ``retry``/``cancel`` ``--all`` and ``purge``: filters, confirmation, exit codes, output."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from taskq.client import Client
from taskq.models import TaskMessage, TaskState
from taskq.settings import Settings
from taskq.store import Finish, Store
from tests.helpers import WorkerFactory, settings_env, wait_for


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal here: a bulk command without --yes must refuse rather than ask.
    return subprocess.run([sys.executable, "-m", "taskq", *args], env=settings_env(settings), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def _failed(store: Store, n: int, *, task: str = "fail", prefix: str = "f") -> list[str]:
    """n tasks recorded as failed by worker wx (no Kafka involved)."""
    msgs = [TaskMessage(id=f"{prefix}{i:031d}", task=task, args=[f"arg-{i}"]) for i in range(n)]
    store.create(msgs)
    store.start_many(msgs, worker="wx", lease="L")
    store.finish_many([Finish(m.id, 1, TaskState.FAILED, error=f"RuntimeError: kaput {i}")
                       for i, m in enumerate(msgs)], worker="wx", lease="L")
    return [m.id for m in msgs]


def test_list_filters_prints_whole_ids_the_total_and_json(settings: Settings, store: Store) -> None:
    ids = _failed(store, 3)
    store.create([TaskMessage(id="q" * 32, task="add", args=[1, 2])])
    res = _cli(settings, "list", "--status", "failed", "--search", "KAPUT 1", "--since", "1h")
    assert res.returncode == 0, res.stderr
    assert ids[1] in res.stdout and ids[0] not in res.stdout and "q" * 32 not in res.stdout
    assert "1 shown of 1 (status failed, since " in res.stdout and "search KAPUT 1)" in res.stdout
    page = json.loads(_cli(settings, "list", "--worker", "wx", "--limit", "2", "--json").stdout)
    assert (page["total"], page["total_exact"]) == (3, True)
    assert [t["id"] for t in page["items"]] == [ids[2], ids[1]]
    nxt = json.loads(_cli(settings, "list", "--worker", "wx", "--limit", "2", "--json",
                          "--cursor", page["next_cursor"]).stdout)
    assert len(nxt["items"]) == 1 and nxt["next_cursor"] is None and nxt["prev_cursor"]
    plain = _cli(settings, "list", "--limit", "2").stdout
    assert "next page:     --cursor " in plain and "2 shown of 4" in plain


@pytest.mark.parametrize(("args", "why"), [
    (["list", "--status", "lost"], "status 'lost' is not a task state"),
    (["list", "--since", "last tuesday"], "--since 'last tuesday' is not a time"),
    (["list", "--since", "2h", "--until", "3h"], "is after until"),
    (["list", "--cursor", "x"], "cursor 'x' is invalid"),
    (["retry"], "give a task id, or --all with filters"),
    (["retry", "abc", "--all"], "give a task id or --all, not both"),
    (["cancel", "abc", "--task", "add"], "the filter options select tasks for --all"),
    (["retry", "--all", "--status", "success"], "retry takes tasks that are cancelled, dead, failed"),
    (["cancel", "--all", "--status", "dead"], "cancel takes tasks that are queued, retrying"),
    (["purge", "--older-than", "soon"], "--older-than 'soon' is not a duration"),
])
def test_bad_options_exit_2_with_one_line(settings: Settings, args: list[str], why: str) -> None:
    res = _cli(settings, *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert why in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_bulk_command_without_yes_and_no_terminal_refuses_and_changes_nothing(
        settings: Settings, store: Store) -> None:
    ids = _failed(store, 4)
    res = _cli(settings, "retry", "--all", "--task", "fail")
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: 4 failed or dead tasks (task fail) match; pass --yes to retry them "
                                  "without asking")
    assert {store.get(i).status for i in ids} == {TaskState.FAILED}
    dry = _cli(settings, "retry", "--all", "--task", "fail", "--dry-run", "--json")
    assert json.loads(dry.stdout) == {"matched": 4, "done": 0, "skipped": 0, "dry_run": True, "capped": False,
                                      "limit": 100_000}
    assert _cli(settings, "cancel", "--all", "--task", "nothing-here").stdout.strip() == \
        "no queued or retrying tasks match (task nothing-here)"


def test_retry_all_with_yes_retries_the_matched_tasks_and_they_run_again(
        settings: Settings, store: Store, client: Client, start_worker: WorkerFactory) -> None:
    # client: the topics exist before the worker starts
    ids = _failed(store, 5)
    other = _failed(store, 2, task="sub", prefix="s")
    start_worker("w1")
    res = _cli(settings, "retry", "--all", "--status", "failed", "--task", "fail", "--yes")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "retried 5 of 5 matched" and "retrying" in res.stderr  # the progress bar
    wait_for(lambda: all(store.get(i).attempts == 2 and store.get(i).status == "failed" for i in ids), timeout=30,
             what="the retried tasks to run again")
    assert {store.get(i).history[-1]["reason"] for i in ids} == {"manual retry"}
    assert {store.get(i).attempts for i in other} == {1}


def test_cancel_all_and_purge_with_yes(settings: Settings, store: Store) -> None:
    store.create([TaskMessage(id=f"c{i:031d}", task="add", args=[i, 1]) for i in range(3)])
    res = _cli(settings, "cancel", "--all", "--task-prefix", "ad", "--yes", "--json")
    assert json.loads(res.stdout)["done"] == 3
    assert store.counts()["cancelled"] == 3
    ids = _failed(store, 2)
    assert _cli(settings, "purge", "--older-than", "1d", "--yes").stdout.strip() == "no finished tasks match"
    res = _cli(settings, "purge", "--older-than", "0", "--status", "cancelled", "--yes")
    assert res.stdout.strip() == "purged 3 of 3 matched"
    assert store.counts()["cancelled"] == 0 and store.counts()["failed"] == 2
    assert [store.get(i).status for i in ids] == [TaskState.FAILED] * 2


def test_a_bulk_command_asks_on_a_terminal_and_does_nothing_unless_told_yes(
        settings: Settings, store: Store) -> None:
    ids = _failed(store, 2)

    def answer(reply: bytes) -> tuple[int, str]:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "taskq", "cancel", "--all", "--status", "queued"],
                                env=settings_env(settings), stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 30
        while b"[y/N]" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                out += os.read(master, 4096)
        os.write(master, reply)
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
        proc.wait(timeout=10)
        os.close(master)
        return proc.returncode, out.decode(errors="replace")

    store.create([TaskMessage(id=f"k{i:031d}", task="add") for i in range(2)])
    code, out = answer(b"n\n")
    assert code == 1 and "Cancel 2 queued tasks (status queued)? [y/N]" in out and "nothing done" in out
    assert store.counts()["queued"] == 2
    code, out = answer(b"y\n")
    assert code == 0 and "cancelled 2 of 2 matched" in out
    assert store.counts()["queued"] == 0 and store.counts()["cancelled"] == 2
    assert [store.get(i).status for i in ids] == [TaskState.FAILED] * 2
