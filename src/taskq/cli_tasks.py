"""``taskq list``, ``retry``, ``cancel`` and ``purge``: one task by id, or every task a filter matches.

The filter options are the HTTP API's filters (docs/http-api.md); a bulk command counts first, asks
before it acts (``--yes`` skips the question; without a terminal to ask on it refuses, exit 2),
shows a progress bar and a summary.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .bulk import BulkResult
from .bulk import Progress as OnProgress
from .cli import _fmt_time, _json, app, clear_errors, err, fail, load_settings
from .client import Client
from .errors import InvalidTask
from .models import TaskRecord
from .query import TaskFilter, decode_cursor

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str, what: str) -> float:
    """``90``, ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` in seconds; exit 2 for anything else."""
    m = _DURATION.match(text)
    if m is None:
        fail(f"{what} {text!r} is not a duration: use seconds or a number with s, m, h, d or w (e.g. 7d)", code=2)
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_time(text: str | None, what: str) -> float | None:
    """Epoch seconds, a duration ago (``2h``: two hours ago) or an ISO date/time (local time if naive)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    if _DURATION.match(text):
        return time.time() - parse_duration(text, what)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        fail(f"{what} {text!r} is not a time: use epoch seconds, a duration ago (2h, 7d) or an ISO date "
             "(2026-12-01 or 2026-12-01T08:00)", code=2)


Status = Annotated[str | None, typer.Option("--status", help="One state: queued, running, retrying, success, "
                                                               "failed, dead or cancelled")]
TaskName = Annotated[str | None, typer.Option("--task", help="The task name, exactly")]
TaskPrefix = Annotated[str | None, typer.Option("--task-prefix", help="Task names starting with this")]
Worker = Annotated[str | None, typer.Option("--worker", help="The worker that ran the latest attempt")]
Since = Annotated[str | None, typer.Option("--since", help="Created at or after: epoch seconds, 2h (ago) or ISO")]
Until = Annotated[str | None, typer.Option("--until", help="Created at or before: epoch seconds, 2h (ago) or ISO")]
Search = Annotated[str | None, typer.Option("--search", "-q", help="In the args, kwargs, error or id (any case)")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Act without asking for confirmation")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only count the tasks it would act on")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
All = Annotated[bool, typer.Option("--all", help="Every task the filter options match (not one id)")]


def make_filter(status: str | None, task: str | None, task_prefix: str | None, worker: str | None,
                since: str | None, until: str | None, search: str | None) -> TaskFilter:
    try:
        return TaskFilter(status=status, task=task, task_prefix=task_prefix, worker=worker,  # type: ignore[arg-type]
                          since=parse_time(since, "--since"), until=parse_time(until, "--until"), q=search)
    except InvalidTask as exc:
        fail(str(exc), code=2)


def _describe(filt: TaskFilter) -> str:
    names = {"task_prefix": "task prefix", "q": "search"}
    parts = [f"{names.get(k, k)} {v if k not in ('since', 'until') else _fmt_time(v)}"
             for k, v in filt.to_dict().items()]
    return f" ({', '.join(parts)})" if parts else ""


@app.command("list")
def list_tasks(
    status: Status = None, task: TaskName = None, task_prefix: TaskPrefix = None, worker: Worker = None,
    since: Since = None, until: Until = None, search: Search = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Tasks per page")] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="A page's next or previous cursor")] = None,
    as_json: AsJson = False,
) -> None:
    """List tasks newest first, filtered, with the filter's total and the cursors of the next pages."""
    filt = make_filter(status, task, task_prefix, worker, since, until, search)
    try:
        decode_cursor(cursor)
    except InvalidTask as exc:
        fail(str(exc), code=2)
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        page = client.list_tasks(filt, limit=limit, cursor=cursor)
    if as_json:
        typer.echo(_json({"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor,
                          "prev_cursor": page.prev_cursor, "total": page.total, "total_exact": page.total_exact}))
        return
    total = f"{page.total:,}" + ("" if page.total_exact else "+")
    if not page.items:
        typer.echo(f"no tasks on this page; {total} match{_describe(filt)}")
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("ID", "TASK", "STATUS", "ATTEMPTS", "WORKER", "CREATED", "ERROR"):
            table.add_column(col, no_wrap=col != "ERROR", overflow="ellipsis" if col == "ERROR" else "fold")
        for r in page.items:
            table.add_row(r.id, escape(r.task), r.status.value, str(r.attempts), escape(r.worker or "-"),
                          _fmt_time(r.created_at), escape((r.error or "-").splitlines()[0]))
        if sys.stdout.isatty():
            Console().print(table)
        else:  # piped: whole lines (ids and errors), without the padding of the last column
            console = Console(width=200)
            with console.capture() as shot:
                console.print(table)
            typer.echo("\n".join(line.rstrip() for line in shot.get().splitlines()))
        typer.echo(f"{len(page.items)} shown of {total}{_describe(filt)}")
    if page.next_cursor:
        typer.echo(f"next page:     --cursor {page.next_cursor}")
    if page.prev_cursor:
        typer.echo(f"previous page: --cursor {page.prev_cursor}")


def _one_or_all(command: str, task_id: str | None, every: bool, filt: TaskFilter) -> None:
    if task_id is not None and every:
        fail(f"give a task id or --all, not both (taskq {command} ID, or taskq {command} --all --status ...)", code=2)
    if task_id is None and not every:
        fail(f"give a task id, or --all with filters (e.g. taskq {command} --all --task report)", code=2)
    if task_id is not None and not filt.is_empty:
        fail(f"the filter options select tasks for --all; taskq {command} ID takes none", code=2)


def _run_bulk(verbs: tuple[str, str, str], filt: TaskFilter, action: Callable[..., BulkResult], *, yes: bool,
              dry_run: bool, as_json: bool, states: str) -> None:
    """Count, confirm, act with a progress bar, summarise (see the module docstring).

    ``verbs``: the action as in "retry them", "retrying", "retried"."""
    verb, doing, done = verbs
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        try:
            count = action(client, filt, dry_run=True)
        except InvalidTask as exc:  # a status the action does not take: a usage error
            fail(str(exc), code=2)
        n = f"{count.matched:,}{'+' if count.capped else ''}"
        what = f"{n} {states} task{'s' if count.matched != 1 else ''}{_describe(filt)}"
        if dry_run or count.matched == 0:
            if as_json:
                typer.echo(_json(count.to_dict()))
            else:
                typer.echo(f"{what} would be {done}" if count.matched else f"no {states} tasks match{_describe(filt)}")
            return
        if not yes:
            if not sys.stdin.isatty():
                fail(f"{what} match; pass --yes to {verb} them without asking", code=2)
            if not typer.confirm(f"{verb.capitalize()} {what}?", err=True):
                fail("nothing done", code=1)
        with Progress(TextColumn(doing), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=False) as bar:
            job = bar.add_task(doing, total=count.matched)

            def moved(r: BulkResult) -> None:
                bar.update(job, completed=r.matched)

            on: OnProgress = moved
            result = action(client, filt, dry_run=False, progress=on)
    if as_json:
        typer.echo(_json(result.to_dict()))
        return
    summary = f"{done} {result.done:,} of {result.matched:,} matched"
    typer.echo(f"{summary} ({result.skipped:,} skipped: they changed state meanwhile)" if result.skipped else summary)
    if result.capped:
        typer.echo(f"more may match: one call acts on at most {result.limit:,} tasks (TASKQ_BULK_MAX); run it again")


def _change_state(task_id: str, change: Callable[[Client, str], TaskRecord]) -> None:
    """Apply one state change (cancel, retry) and print the task's id and new status."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        rec = change(client, task_id)
    typer.echo(f"{rec.id} {rec.status.value}" + (" (cancel requested: the task may stop early)"
                                                 if rec.cancel_requested and not rec.status.terminal else ""))


@app.command()
def retry(
    task_id: Annotated[str | None, typer.Argument(help="Task id (or --all and filters)")] = None,
    every: All = False, status: Status = None, task: TaskName = None, task_prefix: TaskPrefix = None,
    worker: Worker = None, since: Since = None, until: Until = None, search: Search = None,
    yes: Yes = False, dry_run: DryRun = False, as_json: AsJson = False,
) -> None:
    """Queue a failed, dead or cancelled task again, or with --all every one a filter matches (failed
    and dead unless --status says), each with a fresh retry budget."""
    filt = make_filter(status, task, task_prefix, worker, since, until, search)
    _one_or_all("retry", task_id, every, filt)
    if task_id is not None:
        _change_state(task_id, Client.retry)
        return
    _run_bulk(("retry", "retrying", "retried"), filt, lambda c, f, **kw: c.retry_all(f, **kw), yes=yes,
              dry_run=dry_run, as_json=as_json, states=filt.status.value if filt.status else "failed or dead")


@app.command()
def cancel(
    task_id: Annotated[str | None, typer.Argument(help="Task id (or --all and filters)")] = None,
    every: All = False, status: Status = None, task: TaskName = None, task_prefix: TaskPrefix = None,
    worker: Worker = None, since: Since = None, until: Until = None, search: Search = None,
    yes: Yes = False, dry_run: DryRun = False, as_json: AsJson = False,
) -> None:
    """Cancel a queued or retrying task (a running one is asked to stop), or with --all every queued or
    retrying one a filter matches (delayed ones too)."""
    filt = make_filter(status, task, task_prefix, worker, since, until, search)
    _one_or_all("cancel", task_id, every, filt)
    if task_id is not None:
        _change_state(task_id, Client.cancel)
        return
    _run_bulk(("cancel", "cancelling", "cancelled"), filt, lambda c, f, **kw: c.cancel_all(f, **kw), yes=yes,
              dry_run=dry_run, as_json=as_json, states=filt.status.value if filt.status else "queued or retrying")


@app.command()
def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Finished longer ago than this: 7d, 12h, 3600")],
    status: Status = None, task: TaskName = None, task_prefix: TaskPrefix = None, worker: Worker = None,
    since: Since = None, until: Until = None, search: Search = None,
    yes: Yes = False, dry_run: DryRun = False, as_json: AsJson = False,
) -> None:
    """Delete finished tasks (success, failed, dead, cancelled) that finished longer ago than --older-than."""
    age = parse_duration(older_than, "--older-than")
    filt = make_filter(status, task, task_prefix, worker, since, until, search)
    _run_bulk(("purge", "purging", "purged"), filt, lambda c, f, **kw: c.purge(f, older_than=age, **kw),
              yes=yes, dry_run=dry_run, as_json=as_json, states=filt.status.value if filt.status else "finished")
