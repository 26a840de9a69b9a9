"""The store's pipelined scripts against real Redis: lost script caches, one round trip per turn."""

from __future__ import annotations

import time

from taskq.models import TaskMessage, TaskState
from taskq.store import Finish, Store


def _msg(i: int) -> TaskMessage:
    return TaskMessage(id=f"{i:032x}", task="add", args=[i, 1], kwargs={})


def test_scripts_are_reloaded_after_redis_forgot_them_and_run_exactly_once(store: Store) -> None:
    msgs = [_msg(i) for i in range(5)]
    store.create(msgs[:2])
    store.r.script_flush()  # what a Redis restart does to the script cache
    recorded, decisions = store.apply([], msgs, worker="w1", lease="L1")
    assert recorded == [] and [d.action for d in decisions] == ["run"] * 5
    assert all(d.attempt == 1 for d in decisions)  # a NOSCRIPT call did nothing; its rerun counts once
    store.r.script_flush()
    recorded, decisions = store.apply([Finish(m.id, 1, TaskState.SUCCESS, i + 1) for i, m in enumerate(msgs)],
                                      [], worker="w1", lease="L1")
    assert recorded == [True] * 5 and decisions == []
    recs = store.get_many(m.id for m in msgs)
    assert [r.status for r in recs if r] == [TaskState.SUCCESS] * 5
    assert [r.attempts for r in recs if r] == [1] * 5
    assert [len(r.history) for r in recs if r] == [1] * 5


def test_one_turn_records_outcomes_before_claiming_new_runs(store: Store) -> None:
    first, second = _msg(100), _msg(101)
    store.create([first, second])
    assert store.start_many([first], worker="w1", lease="L1")[0].attempt == 1
    recorded, decisions = store.apply([Finish(first.id, 1, TaskState.FAILED, error="boom")], [first, second],
                                      worker="w1", lease="L1")
    assert recorded == [True]
    # The redelivered first message sees the outcome written earlier in the same round trip.
    assert [(d.action, d.detail) for d in decisions] == [("skip", "failed"), ("run", "")]
    # A run that lost its lease cannot record: the outcome is refused, the record is untouched.
    assert store.finish_many([Finish(second.id, 1, TaskState.SUCCESS, 3)], worker="w2", lease="L2") == [False]
    assert store.get(second.id).status is TaskState.RUNNING


def test_a_start_whose_answer_was_lost_is_handed_back_to_its_own_run_only(store: Store) -> None:
    m = _msg(200)
    store.create([m])
    store.heartbeat("w1", lease="L1", partitions=[0], current_tasks=0, concurrency=1, tasks={}, started_at=0.0)
    assert store.start_many([m], worker="w1", lease="L1")[0].attempt == 1
    # Redis ran the START but the reply never arrived; the worker asks again with the same lease.
    again = store.start_many([m], worker="w1", lease="L1")[0]
    assert (again.action, again.attempt) == ("run", 1)
    assert len(store.get(m.id).history) == 1  # not counted as a second attempt
    # Anyone else sees a live owner.
    assert store.start_many([m], worker="w2", lease="L2")[0].action == "busy"


def test_prune_drops_old_entries_from_every_index_and_forgets_task_names_left_empty(store: Store) -> None:
    old = time.time() - store.settings.result_ttl - 60
    stale = [TaskMessage(id=f"old{i:029d}", task="report", args=[i], created_at=old) for i in range(3)]
    fresh = [TaskMessage(id=f"new{i:029d}", task="add", args=[i, 1]) for i in range(2)]
    mixed = TaskMessage(id=f"mix{0:029d}", task="add", args=[9, 9], created_at=old)
    store.create([*stale, *fresh, mixed])
    for m in [*stale, mixed]:
        store.apply([], [m], worker="w", lease="l")
    store.apply([Finish(m.id, 1, TaskState.SUCCESS, 1) for m in [*stale, mixed]], [], worker="w", lease="l")
    store.prune()
    r, key = store.r, store.key
    assert r.zcard(key("idx", "all")) == 2
    assert r.zcard(key("idx", "state", "success")) == 0
    assert not r.exists(key("idx", "task", "report"))  # every entry was old: the index is gone
    assert {m.decode() if isinstance(m, bytes) else m for m in r.zrange(key("idx", "task", "add"), 0, -1)} == {
        m.id for m in fresh}
    names = {n.decode() if isinstance(n, bytes) else n for n in r.smembers(key("task-names"))}
    assert names == {"add"}
    store.create([TaskMessage(id=f"rep{0:029d}", task="report", args=[1])])  # the name comes back with a task
    assert store.list_tasks(task="report", limit=10).items[0].id == f"rep{0:029d}"
