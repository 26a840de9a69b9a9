"""Listing with 100,000 tasks in Redis: cursor pages and filters stay index range reads.

What is asserted is the work each call makes Redis do (commands processed, read from Redis' own
INFO counters), not its time: a range read costs about a page of commands, a walk of the whole
index a hundred thousand. The timings are printed for the record only.
"""

from __future__ import annotations

import time

from taskq.models import TaskMessage, TaskState
from taskq.query import SCAN_MAX, TaskFilter
from taskq.store import Store

# A page of 50 from one index: its range read, the 50 records, a count.
PAGE_COMMANDS = 120
# Two filters that no one index answers: the status index is walked and each entry's task checked;
# one task in ten is 'sub' here, so about ten entries per match (500 for a page), far from 100,000.
FILTERED_COMMANDS = 1200


def _commands(store: Store) -> int:
    return int(store.r.info("stats")["total_commands_processed"])


def test_listing_pages_and_filters_over_100k_tasks(store: Store) -> None:
    n = 100_000
    t0 = time.time() - n
    for start in range(0, n, 5000):
        store.create([TaskMessage(id=f"t{i:06d}", task="add" if i % 10 else "sub", args=[i], created_at=t0 + i)
                      for i in range(start, min(n, start + 5000))])
    timings = {}
    work: dict[str, int] = {}
    began, c0 = time.perf_counter(), _commands(store)
    page = store.list_tasks(limit=50)
    timings["newest page"], work["newest page"] = time.perf_counter() - began, _commands(store) - c0 - 1
    assert [r.id for r in page.items[:3]] == ["t099999", "t099998", "t099997"]
    began, c0 = time.perf_counter(), _commands(store)
    deep = store.list_tasks(limit=50, cursor=page.next_cursor)
    for _ in range(20):
        deep = store.list_tasks(limit=50, cursor=deep.next_cursor)
    timings["22nd page"] = (time.perf_counter() - began) / 21
    work["22nd page"] = (_commands(store) - c0 - 1) // 21
    assert deep.items[0].id == f"t{n - 1 - 21 * 50:06d}"
    began, c0 = time.perf_counter(), _commands(store)
    subs = store.list_tasks(task="sub", limit=50)
    timings["task filter"], work["task filter"] = time.perf_counter() - began, _commands(store) - c0 - 1
    assert all(r.task == "sub" for r in subs.items) and subs.items[0].id == "t099990"
    began, c0 = time.perf_counter(), _commands(store)
    queued_subs = store.list_tasks(status=TaskState.QUEUED, task="sub", limit=50)
    timings["status+task filter"] = time.perf_counter() - began
    work["status+task filter"] = _commands(store) - c0 - 1
    assert len(queued_subs.items) == 50 and all(r.task == "sub" for r in queued_subs.items)
    assert store.counts()["queued"] == n
    # A search that matches nothing examines at most query.SCAN_MAX entries, page and count alike.
    began, c0 = time.perf_counter(), _commands(store)
    none = store.list_tasks(TaskFilter(q="no such text"), limit=50)
    timings["search, no match"] = time.perf_counter() - began
    search_work = _commands(store) - c0 - 1
    assert none.items == [] and none.next_cursor is not None and (none.total, none.total_exact) == (0, False)
    began = time.perf_counter()
    prefixed = store.list_tasks(TaskFilter(task_prefix="su", status=TaskState.QUEUED), limit=50)
    timings["prefix+status, exact total"] = time.perf_counter() - began
    assert (prefixed.total, prefixed.total_exact) == (n // 10, True)
    filtered = work.pop("status+task filter")
    assert max(work.values()) <= PAGE_COMMANDS and filtered <= FILTERED_COMMANDS, (work, filtered)
    assert search_work <= 2 * SCAN_MAX, search_work  # a search reads at most SCAN_MAX entries, not all
    print("\n" + ", ".join(f"{k}: {v * 1000:.1f} ms" for k, v in timings.items()), work, search_work)
