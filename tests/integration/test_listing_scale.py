"""Listing with 100,000 tasks in Redis: cursor pages and filters stay index range reads."""

from __future__ import annotations

import time

from taskq.models import TaskMessage, TaskState
from taskq.query import TaskFilter
from taskq.store import Store


def test_listing_pages_and_filters_over_100k_tasks(store: Store) -> None:
    n = 100_000
    t0 = time.time() - n
    for start in range(0, n, 5000):
        store.create([TaskMessage(id=f"t{i:06d}", task="add" if i % 10 else "sub", args=[i], created_at=t0 + i)
                      for i in range(start, min(n, start + 5000))])
    timings = {}
    began = time.perf_counter()
    page = store.list_tasks(limit=50)
    timings["newest page"] = time.perf_counter() - began
    assert [r.id for r in page.items[:3]] == ["t099999", "t099998", "t099997"]
    began = time.perf_counter()
    deep = store.list_tasks(limit=50, cursor=page.next_cursor)
    for _ in range(20):
        deep = store.list_tasks(limit=50, cursor=deep.next_cursor)
    timings["22nd page"] = (time.perf_counter() - began) / 21
    assert deep.items[0].id == f"t{n - 1 - 21 * 50:06d}"
    began = time.perf_counter()
    subs = store.list_tasks(task="sub", limit=50)
    timings["task filter"] = time.perf_counter() - began
    assert all(r.task == "sub" for r in subs.items) and subs.items[0].id == "t099990"
    began = time.perf_counter()
    queued_subs = store.list_tasks(status=TaskState.QUEUED, task="sub", limit=50)
    timings["status+task filter"] = time.perf_counter() - began
    assert len(queued_subs.items) == 50 and all(r.task == "sub" for r in queued_subs.items)
    assert store.counts()["queued"] == n
    # A search that matches nothing examines at most query.SCAN_MAX entries, page and count alike.
    began = time.perf_counter()
    none = store.list_tasks(TaskFilter(q="no such text"), limit=50)
    timings["search, no match"] = time.perf_counter() - began
    assert none.items == [] and none.next_cursor is not None and (none.total, none.total_exact) == (0, False)
    began = time.perf_counter()
    prefixed = store.list_tasks(TaskFilter(task_prefix="su", status=TaskState.QUEUED), limit=50)
    timings["prefix+status, exact total"] = time.perf_counter() - began
    assert (prefixed.total, prefixed.total_exact) == (n // 10, True)
    print("\n" + ", ".join(f"{k}: {v * 1000:.1f} ms" for k, v in timings.items()))
