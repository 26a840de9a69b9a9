"""Filtered listings against real Redis: every filter, totals exact and capped, pages both ways."""

from __future__ import annotations

import time

import pytest

from taskq import query
from taskq.errors import InvalidTask
from taskq.models import TaskMessage, TaskState
from taskq.query import TaskFilter
from taskq.store import Finish, Store

T0 = 1_700_000_000.0


def _seed(store: Store) -> dict[str, list[str]]:
    """30 tasks a second apart: report.daily/report.weekly/add, run by w1 or w2, some failed or dead."""
    msgs = [TaskMessage(id=f"t{i:03d}", task=("report.daily", "report.weekly", "add")[i % 3],
                        args=[i, f"Customer-{i % 5}"], kwargs={"region": "EU" if i % 2 else "US"},
                        created_at=T0 + i) for i in range(30)]
    store.create(msgs)
    started = msgs[:20]
    for w in ("w1", "w2"):
        store.start_many([m for m in started if (int(m.id[1:]) % 2 == 0) == (w == "w1")], worker=w, lease=w)
    outcomes = {"w1": [], "w2": []}  # type: dict[str, list[Finish]]
    for m in started:
        i = int(m.id[1:])
        w = "w1" if i % 2 == 0 else "w2"
        if i % 4 == 0:
            outcomes[w].append(Finish(m.id, 1, TaskState.FAILED, error=f"ValueError: bad input {i}"))
        elif i % 4 == 1:
            outcomes[w].append(Finish(m.id, 1, TaskState.DEAD, error="TimeoutError: upstream slow"))
        else:
            outcomes[w].append(Finish(m.id, 1, TaskState.SUCCESS, result=i))
    for w, fins in outcomes.items():
        store.finish_many(fins, worker=w, lease=w)
    return {"all": [m.id for m in msgs]}


def _ids(page: query.Page) -> list[str]:
    return [r.id for r in page.items]


def _expected(store: Store, pred) -> list[str]:  # type: ignore[no-untyped-def]
    recs = [store.get(f"t{i:03d}") for i in range(30)]
    return [r.id for r in sorted(recs, key=lambda r: -(r.created_at or 0)) if pred(r)]


@pytest.mark.parametrize(("filt", "pred"), [
    (TaskFilter(), lambda r: True),
    (TaskFilter(status=TaskState.DEAD), lambda r: r.status == "dead"),
    (TaskFilter(task="add"), lambda r: r.task == "add"),
    (TaskFilter(task_prefix="report."), lambda r: r.task.startswith("report.")),
    (TaskFilter(task_prefix="report.", status=TaskState.FAILED),
     lambda r: r.task.startswith("report.") and r.status == "failed"),
    (TaskFilter(worker="w2"), lambda r: r.worker == "w2"),
    (TaskFilter(since=T0 + 5, until=T0 + 12), lambda r: T0 + 5 <= r.created_at <= T0 + 12),
    (TaskFilter(q="customer-3"), lambda r: r.args[1] == "Customer-3"),
    (TaskFilter(q='"region":"eu"'), lambda r: r.kwargs["region"] == "EU"),
    (TaskFilter(q="TIMEOUTERROR"), lambda r: r.status == "dead"),
    (TaskFilter(q="t017"), lambda r: r.id == "t017"),
    (TaskFilter(status=TaskState.SUCCESS, task="add", worker="w1", since=T0 + 3),
     lambda r: r.status == "success" and r.task == "add" and r.worker == "w1" and r.created_at >= T0 + 3),
    (TaskFilter(task="add", task_prefix="report."), lambda r: False),
])
def test_every_filter_lists_exactly_its_tasks_newest_first_with_the_total(
        store: Store, filt: TaskFilter, pred) -> None:  # type: ignore[no-untyped-def]
    _seed(store)
    want = _expected(store, pred)
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = store.list_tasks(filt, limit=4, cursor=cursor)
        assert page.total == len(want)
        seen += _ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == want


def test_totals_of_index_only_filters_are_exact_and_the_others_say_when_capped(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(store)
    for filt, n in [(TaskFilter(status=TaskState.DEAD), 5), (TaskFilter(task_prefix="report."), 20),
                    (TaskFilter(status=TaskState.FAILED, task="add"), 1), (TaskFilter(since=T0 + 25), 5)]:
        p = query.plan(store.r, store.key, filt)
        assert query.total(store.r, store.key, p) == (n, True), filt
    monkeypatch.setattr(query, "SCAN_MAX", 10)  # a count that examines 10 entries: a lower bound
    page = store.list_tasks(TaskFilter(worker="w1"), limit=3)  # t029..t020 never ran: none of 10 matches
    assert (page.total, page.total_exact, page.items) == (0, False, []) and page.next_cursor is not None
    page = store.list_tasks(TaskFilter(worker="w1"), limit=3, cursor=page.next_cursor)
    assert _ids(page) == ["t018", "t016", "t014"]
    page = store.list_tasks(TaskFilter(status=TaskState.DEAD), limit=3)
    assert (page.total, page.total_exact) == (5, True)  # ZCOUNT needs no scan


def test_pages_go_back_and_forth_and_a_previous_page_is_the_one_seen_before(store: Store) -> None:
    _seed(store)
    first = store.list_tasks(limit=7)
    assert first.prev_cursor is None and _ids(first) == [f"t{i:03d}" for i in range(29, 22, -1)]
    second = store.list_tasks(limit=7, cursor=first.next_cursor)
    third = store.list_tasks(limit=7, cursor=second.next_cursor)
    assert _ids(third)[0] == "t015" and third.prev_cursor is not None
    back = store.list_tasks(limit=7, cursor=third.prev_cursor)
    assert _ids(back) == _ids(second) and back.next_cursor == second.next_cursor
    top = store.list_tasks(limit=7, cursor=back.prev_cursor)
    assert _ids(top) == _ids(first) and top.prev_cursor is None
    # Tasks created meanwhile show on the first page, never shift a page.
    store.create([TaskMessage(id="new", task="add", created_at=T0 + 100)])
    again = store.list_tasks(limit=7, cursor=first.next_cursor)
    assert _ids(again) == _ids(second)
    newer = store.list_tasks(limit=7, cursor=again.prev_cursor)
    assert _ids(newer) == _ids(first) and newer.prev_cursor is not None
    assert _ids(store.list_tasks(limit=7, cursor=newer.prev_cursor)) == ["new", *_ids(first)[:6]]
    # A short last page back from the end, filtered.
    dead = store.list_tasks(TaskFilter(status=TaskState.DEAD), limit=2)
    dead2 = store.list_tasks(TaskFilter(status=TaskState.DEAD), limit=2, cursor=dead.next_cursor)
    dead3 = store.list_tasks(TaskFilter(status=TaskState.DEAD), limit=2, cursor=dead2.next_cursor)
    assert _ids(dead3) == ["t001"] and dead3.next_cursor is None
    assert _ids(store.list_tasks(TaskFilter(status=TaskState.DEAD), limit=2, cursor=dead3.prev_cursor)) == \
        _ids(dead2)


def test_a_selective_search_stops_at_the_scan_bound_and_continues_from_there(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(store)
    monkeypatch.setattr(query, "SCAN_MAX", 10)
    page = store.list_tasks(TaskFilter(q="customer-0"), limit=50)  # t025, t020, ...: 2 in the first 10
    assert _ids(page) == ["t025", "t020"] and page.next_cursor is not None
    assert (page.total, page.total_exact) == (2, False)
    rest = store.list_tasks(TaskFilter(q="customer-0"), limit=50, cursor=page.next_cursor)
    assert _ids(rest) == ["t015", "t010"]


def test_ties_on_the_creation_time_are_paged_without_loss_or_repeat(store: Store) -> None:
    now = time.time()
    store.create([TaskMessage(id=f"g{i:04d}", task="add", created_at=now) for i in range(1200)])
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_tasks(limit=500, cursor=cursor)
        seen += _ids(page)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 1200


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"since": 10.0, "until": 5.0}, "since (10) is after until (5)"),
    ({"since": -1.0}, "since must be a time in epoch seconds"),
    ({"until": float("inf")}, "until must be a time in epoch seconds"),
    ({"q": "x" * 201}, "search for at most 200"),
    ({"status": "nope"}, "status 'nope' is not a task state"),
])
def test_a_bad_filter_says_what_is_wrong(kwargs: dict, why: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidTask, match=why.replace("(", r"\(").replace(")", r"\)")):
        TaskFilter(**kwargs)


def test_a_malformed_cursor_is_refused(store: Store) -> None:
    for bad in ("abc", "1.5", "b:x", "nan:x", "1e400:x"):
        with pytest.raises(InvalidTask, match="cursor"):
            store.list_tasks(limit=5, cursor=bad)


def test_task_names_come_with_their_counts(store: Store) -> None:
    _seed(store)
    assert store.task_names() == {"add": 10, "report.daily": 10, "report.weekly": 10}
    assert store.task_names(prefix="report.w") == {"report.weekly": 10}
