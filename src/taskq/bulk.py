"""Bulk actions on a filter: retry, cancel or purge every task it matches (docs/http-api.md).

A filter is walked newest first (``taskq.query``) in batches of ``query.BATCH`` entries; each task
changes through its own atomic script, the one its single-task action uses, so a task that changed
meanwhile is skipped and never acted on twice. One call acts on at most ``TASKQ_BULK_MAX`` tasks
and examines at most ``SCAN_MAX`` index entries; past either it says ``capped``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import lua, query
from .errors import BrokerUnavailable, InvalidTask, TaskqError
from .models import CANCELLABLE_STATES, RETRYABLE_STATES, TERMINAL_STATES, TaskMessage, TaskState, TaskType
from .store import translate_errors

if TYPE_CHECKING:
    from .client import Client

# Index entries one call examines at most (a selective filter over a huge index stops here).
SCAN_MAX = 1_000_000
RETRY_DEFAULT = frozenset({TaskState.FAILED, TaskState.DEAD})


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action did: ``matched = done + skipped``; ``capped``: it stopped at ``limit`` tasks
    (or at ``SCAN_MAX`` entries examined) and more may match, so call it again."""

    matched: int
    done: int
    skipped: int
    dry_run: bool
    capped: bool
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[BulkResult], None]
Act = Callable[[list[query.Entry]], int]


def states_for(action: str, filt: query.TaskFilter, allowed: Collection[TaskState],
               default: Collection[TaskState] | None = None) -> frozenset[TaskState]:
    """The states an action takes: the filter's status if the action takes it, else its default."""
    if filt.status is None:
        return frozenset(default if default is not None else allowed)
    if filt.status not in allowed:
        names = ", ".join(s.value for s in sorted(allowed))
        raise InvalidTask(f"{action} takes tasks that are {names}; status {filt.status.value!r} is not one of them")
    return frozenset({filt.status})


def run(client: Client, filt: query.TaskFilter, states: frozenset[TaskState], act: Act, *, dry_run: bool,
        progress: Progress | None = None, finished_before: float | None = None) -> BulkResult:
    """Walk the filter's tasks in the given states and hand each batch to ``act`` (which returns how
    many of it it changed); a dry run only counts them."""
    store, cap = client.store, client.settings.bulk_max
    with translate_errors():
        p = query.plan(store.r, store.key, filt, states=states, finished_before=finished_before)
        if dry_run and not p.residual:
            n, _ = query.total(store.r, store.key, p)  # every entry matches: the indexes count them
            return BulkResult(min(n, cap), 0, 0, True, n > cap, cap)
        scan = query.Scan(store.r, store.key, p, budget=SCAN_MAX)
        matched = done = 0
        capped = False
        for chunk in scan.chunks():
            take = chunk[: cap - matched]
            matched += len(take)
            if take and not dry_run:
                done += act(take)
            if progress is not None:
                progress(BulkResult(matched, done, 0 if dry_run else matched - done, dry_run, False, cap))
            if matched >= cap:
                capped = len(take) < len(chunk) or scan.more()
                break
        capped = capped or (not scan.exhausted and matched < cap)
    return BulkResult(matched, done, 0 if dry_run else matched - done, dry_run, capped, cap)


def retry_budgets(client: Client, names: Collection[str], types: dict[str, TaskType] | None = None) -> dict[str, int]:
    """The retry budget a retry by hand grants a task that names none: its ``@task``'s max_retries as
    live workers advertise it (``types``, read now when not given), else ``TASKQ_DEFAULT_MAX_RETRIES``."""
    if types is None:
        types = client.task_types() if names else {}
    out = {}
    for name in names:
        t = types.get(name)
        out[name] = t.max_retries if t is not None and t.max_retries is not None \
            else client.settings.default_max_retries
    return out


def retry(client: Client, filt: query.TaskFilter, *, dry_run: bool = False,
          progress: Progress | None = None) -> BulkResult:
    """Queue again every failed or dead task (or the filter's retryable status) the filter matches,
    each produced to Kafka once, with a fresh retry budget."""
    states = states_for("retry", filt, RETRYABLE_STATES, RETRY_DEFAULT)
    store = client.store
    retried = 0
    types: dict[str, TaskType] | None = None  # what live workers advertise, read once per call

    def act(entries: list[query.Entry]) -> int:
        nonlocal retried, types
        pipe = store.r.pipeline(transaction=False)
        for e in entries:
            pipe.hget(store.key("task", e.id), "task")
        names = [n or "" for n in pipe.execute()]
        if types is None:
            types = client.task_types()
        budgets = retry_budgets(client, set(names), types)
        rows = store._eval_many([(store._requeue, store.requeue_args(e.id, budget=budgets[n], states=states))
                                for e, n in zip(entries, names, strict=True)])
        scheduled = sum(1 for ok, _ in rows if ok == 2)  # a workflow's step: its scheduler produces it
        wanted = [(e.id, int(gen)) for e, (ok, gen) in zip(entries, rows, strict=True) if ok == 1]
        messages: list[TaskMessage] = [rec.message(gen) for (_, gen), rec in
                                       zip(wanted, store.get_many(t for t, _ in wanted), strict=True) if rec]
        try:
            if messages:
                client.producer.send(messages)
        except BaseException as exc:
            for m in messages:
                store.unqueue(m.id, m.gen)  # as it was: the task is not retried, nothing is lost
            if isinstance(exc, TaskqError):
                raise BrokerUnavailable(f"{exc}; {retried} task(s) were retried before Kafka failed and the "
                                        "rest are as they were: run the retry again") from exc
            raise
        retried += len(messages) + scheduled
        return len(messages) + scheduled

    return run(client, filt, states, act, dry_run=dry_run, progress=progress)


def cancel(client: Client, filt: query.TaskFilter, *, dry_run: bool = False,
           progress: Progress | None = None) -> BulkResult:
    """Cancel every queued or retrying task (delayed ones too) the filter matches."""
    states = states_for("cancel", filt, CANCELLABLE_STATES)
    store = client.store

    def act(entries: list[query.Entry]) -> int:
        now = repr(time.time())
        rows = store._eval_many([(store._cancel, [store.prefix, e.id, now, store._ttl_ms, store._maxlen])
                                for e in entries])
        return sum(1 for ok, _ in rows if ok == 1)

    return run(client, filt, states, act, dry_run=dry_run, progress=progress)


def purge(client: Client, filt: query.TaskFilter, *, older_than: float, dry_run: bool = False,
          progress: Progress | None = None) -> BulkResult:
    """Delete the records and index entries of finished tasks that finished over ``older_than`` s ago."""
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) or not 0 <= older_than < math.inf:
        raise InvalidTask(f"older_than must be a finite number of seconds >= 0, got {older_than!r}")
    states = states_for("purge", filt, TERMINAL_STATES)
    store = client.store
    cutoff = time.time() - older_than
    script = store.r.register_script(lua.PURGE)
    names = ",".join(s.value for s in states)

    def act(entries: list[query.Entry]) -> int:
        rows = store._eval_many([(script, [store.prefix, e.id, repr(cutoff), names, e.key]) for e in entries])
        return sum(1 for ok in rows if ok == 1)

    return run(client, filt, states, act, dry_run=dry_run, progress=progress, finished_before=cutoff)
