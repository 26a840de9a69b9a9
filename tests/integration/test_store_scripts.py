"""The store's pipelined scripts against real Redis: lost script caches, one round trip per turn."""

from __future__ import annotations

import time

import pytest

from taskq.models import TaskMessage, TaskState
from taskq.store import PRUNE_GRACE, Finish, Store
from tests.helpers import Services, make_settings


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


def test_prune_drops_entries_of_expired_successes_from_the_mixed_indexes_when_successes_keep_less(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Successes keep 60 s, failures a week: idx:all and idx:task:<name> are trimmed by score at the
    # week, so the entries of successes whose records expired must go by another way.
    store = Store(make_settings(services, result_ttl_success=60))
    monkeypatch.setattr("taskq.store.PRUNE_BATCH", 7)  # several batches and a cursor that moves
    old = time.time() - 600
    done = [TaskMessage(id=f"suc{i:029d}", task="add", args=[i], created_at=old + i * 0.001) for i in range(40)]
    failed = TaskMessage(id=f"bad{0:029d}", task="add", args=[0], created_at=old)
    fresh = TaskMessage(id=f"new{0:029d}", task="add", args=[1])
    store.create([*done, failed, fresh])
    store.apply([], [*done, failed], worker="w", lease="l")
    store.apply([*(Finish(m.id, 1, TaskState.SUCCESS, 1) for m in done),
                 Finish(failed.id, 1, TaskState.FAILED, None, "boom")], [], worker="w", lease="l")
    r, key = store.r, store.key
    r.delete(*(key("task", m.id) for m in done[:30]))  # their TTL ran out
    store.prune()

    def members(k: str) -> set[str]:
        return {m.decode() if isinstance(m, bytes) else m for m in r.zrange(k, 0, -1)}

    kept = {m.id for m in done[30:]} | {failed.id, fresh.id}
    assert members(key("idx", "all")) == kept
    assert members(key("idx", "task", "add")) == kept
    # The walk stops short of the last PRUNE_GRACE seconds and remembers where it stopped.
    cursor = float(r.hget(key("prune-cursor"), "idx:all"))
    assert old + 0.04 < cursor < time.time() - 60 - PRUNE_GRACE + 5
    assert store.list_tasks(task="add", limit=10).items[0].id == fresh.id
    store.close()


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


def test_successful_records_expire_after_their_own_ttl_and_failures_keep_the_longer_one(services: Services) -> None:
    settings = make_settings(services, result_ttl=3600, result_ttl_success=60)
    store = Store(settings)
    try:
        ok, bad, dead = _msg(300), _msg(301), _msg(302)
        store.create([ok, bad, dead])
        store.start_many([ok, bad, dead], worker="w1", lease="L1")
        outcomes = [Finish(ok.id, 1, TaskState.SUCCESS, 2), Finish(bad.id, 1, TaskState.FAILED, error="x"),
                    Finish(dead.id, 1, TaskState.DEAD, error="y")]
        assert store.finish_many(outcomes, worker="w1", lease="L1") == [True] * 3
        ttl = {m.id: store.r.pttl(store.key("task", m.id)) / 1000 for m in (ok, bad, dead)}
        assert 55 < ttl[ok.id] <= 60
        assert 3590 < ttl[bad.id] <= 3600 and 3590 < ttl[dead.id] <= 3600
    finally:
        store.close()


def test_a_first_delivery_keeps_a_compact_record_and_its_history_reads_back_whole(store: Store) -> None:
    ok, failed = _msg(400), _msg(401)
    store.create([ok, failed])
    store.start_many([ok, failed], worker="w1", lease="L1")
    running = store.get(ok.id)
    assert [(a["attempt"], a["worker"], a["reason"]) for a in running.history] == [(1, "w1", "first delivery")]
    assert "outcome" not in running.history[0]
    store.finish_many([Finish(ok.id, 1, TaskState.SUCCESS, 2), Finish(failed.id, 1, TaskState.FAILED, error="boom")],
                      worker="w1", lease="L1")
    # Redis' compact encoding: the record holds no value longer than its listpack limit.
    assert store.r.object("encoding", store.key("task", ok.id)) == "listpack"
    done = store.get(ok.id)
    assert done.history == [{"attempt": 1, "worker": "w1", "started_at": done.started_at,
                             "finished_at": done.finished_at, "outcome": "success", "reason": "first delivery"}]
    assert store.get(failed.id).history[0]["error"] == "boom"
    # A manual retry writes the first attempt out before the fields that told it change.
    store.start_many([store.requeue(failed.id)], worker="w2", lease="L2")
    again = store.get(failed.id)
    assert [(a["attempt"], a["worker"], a.get("outcome"), a.get("error")) for a in again.history] == [
        (1, "w1", "failed", "boom"), (2, "w2", None, None)]


def test_a_retried_first_attempt_keeps_its_outcome_in_the_history(store: Store) -> None:
    m = _msg(402)
    store.create([m])
    store.start_many([m], worker="w1", lease="L1")
    store.finish_many([Finish(m.id, 1, TaskState.RETRYING, error="later", due=time.time())], worker="w1", lease="L1")
    rec = store.get(m.id)
    assert [(a["attempt"], a["outcome"], a["error"]) for a in rec.history] == [(1, "retry", "later")]


def test_the_workers_lua_puts_each_duration_in_the_same_sketch_bucket_as_python(store: Store) -> None:
    """Lua writes the run-time sketch, Python reads it: both must agree on the mapping."""
    from taskq import lua, sketch

    probe = store.r.register_script(lua.TYPE_STATS + "\nreturn sketch_of(tonumber(ARGV[1]))")
    values = [0.0, 5e-7, 1e-6, 0.0001234, 0.004, 0.06, 0.5, 1.0, 4.0, 5.0, 9.99, 60.0, 3600.5, 86400.0 * 6]
    got = {v: probe(keys=[], args=[repr(v)]) for v in values}
    assert got == {v: sketch.bucket(v) for v in values}
