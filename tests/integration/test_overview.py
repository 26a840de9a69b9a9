"""The overview's numbers against real Redis, Kafka and workers: the finish rate over the last 10 s,
the oldest waiting task, and the tasks waiting for a due time (GET /api/scheduled)."""

from __future__ import annotations

import time

import pytest

from taskq.client import Client
from taskq.due import due_page, scheduled_count
from taskq.errors import InvalidTask
from taskq.overview import BUCKET, FinishRate, oldest_queued_age
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import ApiServer, WorkerFactory, wait_all, wait_for


def bump(store: Store, at: float, **counts: int) -> None:
    """What the workers' APPLY script does when tasks finish at ``at``."""
    key = store.key("tput", str(int(at // BUCKET)))
    for status, n in counts.items():
        store.r.hincrby(key, status, n)


def test_the_rate_is_exact_over_the_last_window_and_zero_once_nothing_finishes(store: Store) -> None:
    rate = FinishRate()
    t0 = (int(time.time() // BUCKET) - 5) * BUCKET + 3.0  # 3 s into a bucket, in the past
    bump(store, t0 - 20, success=500)  # long before: never counted
    bump(store, t0 - 4, success=40)  # in the bucket before
    # The first reading has nothing to subtract: an estimate from the last two buckets.
    first, span = rate.read(store, now=t0)
    assert span == 10.0 and first == {"success": pytest.approx((40 * 7 / 10) / 10, abs=0.01)}
    bump(store, t0 + 2, success=30, failed=5)
    rate.read(store, now=t0 + 5)
    bump(store, t0 + 8, success=20, dead=1, retrying=4)  # into the next bucket
    per, span = rate.read(store, now=t0 + 10)
    assert span == 10.0 and per == {"success": 5.0, "failed": 0.5, "dead": 0.1, "retrying": 0.4}
    # Nothing finishes any more: 10 s later the rate is 0, not a minute's average.
    per, span = rate.read(store, now=t0 + 15)
    assert per == {"success": 2.0, "dead": 0.1, "retrying": 0.4}  # (t0+5, t0+15]: the 20 at t0+8
    per, span = rate.read(store, now=t0 + 20.5)
    assert per == {} and span == pytest.approx(10.5)


def test_the_window_is_checked() -> None:
    with pytest.raises(ValueError, match="between 1 and 10"):
        FinishRate(window=30)


def test_the_oldest_queued_age_skips_delayed_tasks_not_yet_due(client: Client, store: Store) -> None:
    assert oldest_queued_age(store) is None
    client.submit("add", 1, 2, _delay=600)
    assert oldest_queued_age(store) is None  # only a delayed task: nothing waits for a worker
    assert scheduled_count(store) == 1
    before = time.time()
    client.get(client.submit("add", 3, 4))  # submit returns at Kafka's ack; get waits for its record
    now = time.time()
    age = oldest_queued_age(store, now=now)
    assert age is not None and 0 <= age <= now - before + 0.01  # the ready task's wait, not the delayed one's
    later = oldest_queued_age(store, now=now + 90)
    assert later == pytest.approx(age + 90)


def test_stats_carry_the_current_rate_and_the_overview_numbers(settings: Settings, start_worker: WorkerFactory,
                                                               client: Client) -> None:
    start_worker("w1")
    api = ApiServer(settings)
    try:
        ids = api.http.post("/api/tasks/batch", json=[{"task": "add", "args": [i, 1]} for i in range(50)]).json()["ids"]
        api.http.post("/api/tasks", json={"task": "add", "args": [0, 0], "delay": 300})
        wait_all(client, ids, timeout=30)
        s = api.http.get("/api/stats").json()
        assert s["counts"]["success"] == 50 and s["workers_alive"] == 1 and s["scheduled"] == 1
        assert s["rate"]["success"] > 0 and s["finished_per_second"] == s["rate"]["success"]
        assert s["rate_window"] == 10.0 and s["oldest_queued_age"] is None
        assert s["throughput"]["success"] > 0  # the minute's average is still there
        # Once nothing finishes, the rate is 0 within the window (and the polls around it).
        wait_for(lambda: api.http.get("/api/stats").json()["finished_per_second"] == 0, timeout=14, interval=1,
                 what="the rate to drop to 0")
    finally:
        api.close()


def test_scheduled_lists_delays_and_retries_soonest_first_in_pages(settings: Settings, start_worker: WorkerFactory,
                                                                   client: Client, store: Store) -> None:
    start_worker("w1", extra=["--tasks", "tests.ui.ui_tasks"])
    api = ApiServer(settings)
    try:
        ids = [api.http.post("/api/tasks", json={"task": "add", "args": [i, 0], "delay": 100 + 10 * i}).json()["id"]
               for i in range(5)]
        retry = api.http.post("/api/tasks", json={"task": "retry_later", "args": [125]}).json()["id"]
        wait_for(lambda: client.get(retry).status == "retrying", timeout=30, what="the retry")
        page = api.http.get("/api/scheduled", params={"limit": 4}).json()
        assert [t["id"] for t in page["items"]] == [ids[0], ids[1], ids[2], retry]
        assert page["total"] == page["later"] == 6
        assert page["items"][3]["status"] == "retrying" and page["items"][3]["due_at"] == client.get(retry).eta
        rest = api.http.get("/api/scheduled", params={"limit": 4, "cursor": page["next_cursor"]}).json()
        assert [t["id"] for t in rest["items"]] == [ids[3], ids[4]] and rest["next_cursor"] is None
        assert all(t["due_at"] > time.time() + 60 for t in page["items"] + rest["items"])
        # Cancelled tasks leave the list.
        client.cancel(ids[0])
        assert ids[0] not in [t.id for t in due_page(store).items]
        for bad in ("nope", "1.5:", "abc:def", "nan:x"):
            r = api.http.get("/api/scheduled", params={"cursor": bad})
            assert r.status_code == 422 and "cursor" in r.json()["detail"], bad
        with pytest.raises(InvalidTask):
            due_page(store, cursor="1:")
    finally:
        api.close()


def test_runs_of_a_worker_whose_heartbeat_expired_are_counted_apart(store: Store) -> None:
    from taskq.models import TaskMessage, new_task_id
    from taskq.overview import running_on_lost_workers

    live = [TaskMessage(id=new_task_id(), task="add", args=[i, 1]) for i in range(3)]
    ghost = [TaskMessage(id=new_task_id(), task="add", args=[i, 2]) for i in range(2)]
    store.create(live + ghost)
    store.heartbeat("alive-1", lease="L1", partitions=[0], current_tasks=3, concurrency=4, tasks={},
                    started_at=0.0, first=True)
    store.start_many(live, worker="alive-1", lease="L1")
    store.start_many(ghost, worker="killed-1", lease="L2")  # its heartbeat never came (or expired)
    assert store.counts()["running"] == 5
    assert running_on_lost_workers(store) == 2


def test_a_lost_worker_shows_the_partitions_it_held_until_live_workers_hold_them(store: Store) -> None:
    store.heartbeat("gone-1", lease="L9", partitions=[1, 2], current_tasks=0, concurrency=4, tasks={},
                    started_at=0.0, first=True)
    store.r.delete(store.key("hb", "gone-1"))  # its heartbeat expired: SIGKILL, a lost node
    (w,) = [w for w in store.workers() if w.id == "gone-1"]
    assert (w.status, w.partitions, w.lost_partitions) == ("lost", [], [1, 2])
    store.heartbeat("other", lease="L1", partitions=[0, 2], current_tasks=0, concurrency=4, tasks={},
                    started_at=0.0, first=True)
    (w,) = [w for w in store.workers() if w.id == "gone-1"]
    assert w.lost_partitions == [1]  # 2 is handed over, 1 still waits
    store.heartbeat("other", lease="L1", partitions=[0, 1, 2], current_tasks=0, concurrency=4, tasks={},
                    started_at=0.0)
    (w,) = [w for w in store.workers() if w.id == "gone-1"]
    assert (w.status, w.lost_partitions) == ("lost", [])
    store.r.delete(store.key("hb", "other"))
    store.heartbeat("gone-1", lease="L10", partitions=[1], current_tasks=0, concurrency=4, tasks={}, started_at=0.0)
    (w,) = [w for w in store.workers() if w.id == "gone-1"]
    assert (w.status, w.partitions, w.lost_partitions) == ("alive", [1], [])
