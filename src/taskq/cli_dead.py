"""``taskq dead``: the dead-letter topic for operators: list, show, download the raw bytes, replay."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli import _fmt_time, _json, clear_errors, fail, load_settings
from .client import Client
from .deadletters import DeadLetter, parse_position

dead_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                       help="Dead letters: tasks that ended dead and messages that could never run.")


def _position(text: str) -> tuple[int, int]:
    try:
        return parse_position(text)
    except ValueError as exc:
        fail(str(exc), 2)


@dead_app.callback()
def dead_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="How many, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """The newest dead letters: where (PARTITION:OFFSET), when, why, and what arrived."""
    if ctx.invoked_subcommand is not None:
        return
    with clear_errors(), Client(load_settings()) as client:
        letters = client.dead_letters(limit=limit)
    if as_json:
        for d in letters:
            typer.echo(_json(d.to_dict()))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    table = Table(box=None, header_style="bold", pad_edge=False, expand=True)
    # Where and when are never cut (they name the letter for 'taskq dead show'); the texts share the rest.
    for col in ("POSITION", "WHEN", "KIND"):
        table.add_column(col, no_wrap=True, min_width=len(col))
    table.add_column("REASON", overflow="ellipsis", no_wrap=True, ratio=3, min_width=10)
    table.add_column("TASK / SOURCE", overflow="fold", ratio=2, min_width=10)
    table.add_column("PREVIEW", overflow="ellipsis", no_wrap=True, ratio=3, min_width=10)
    for d in letters:
        table.add_row(d.position, _fmt_time(d.at)[5:19], d.kind, escape(d.reason[:200]),
                      escape(f"{d.task} {d.task_id}" if d.kind == "task" else (d.source or "")), escape(d.preview))
    Console(soft_wrap=False).print(table)


@dead_app.command("show")
def dead_show(position: Annotated[str, typer.Argument(help="PARTITION:OFFSET, as 'taskq dead' lists it")]) -> None:
    """One dead letter in full, as JSON."""
    p, o = _position(position)
    with clear_errors(), Client(load_settings()) as client:
        d = client.dead_letter(p, o)
    typer.echo(json.dumps({**d.to_dict(), "letter": d.body}, ensure_ascii=False, indent=2, default=str))


@dead_app.command("raw")
def dead_raw(position: Annotated[str, typer.Argument(help="PARTITION:OFFSET")]) -> None:
    """The bytes as they arrived (a message) or the letter itself (a task), on stdout: '> file'."""
    p, o = _position(position)
    with clear_errors(), Client(load_settings()) as client:
        d = client.dead_letter(p, o)
    sys.stdout.buffer.write(d.raw)
    sys.stdout.flush()


def _json_arg(text: str | None, what: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not JSON: {exc}", 2)
    if not isinstance(value, kind):
        fail(f"{what} must be a JSON {'list' if kind is list else 'object'}", 2)
    return value


@dead_app.command("replay")
def dead_replay(
    position: Annotated[str, typer.Argument(help="PARTITION:OFFSET")],
    task: Annotated[str | None, typer.Option("--task", help="Submit this task instead of the letter's")] = None,
    args: Annotated[str | None, typer.Option("--args", help="Corrected arguments, a JSON list")] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="Corrected keyword arguments, a JSON object")] = None,
) -> None:
    """Submit it again as a new task: its own task and arguments, or corrected ones."""
    p, o = _position(position)
    fixed_args, fixed_kwargs = _json_arg(args, "--args", list), _json_arg(kwargs, "--kwargs", dict)
    with clear_errors(), Client(load_settings()) as client:
        tid = client.replay_dead_letter(p, o, task=task, args=fixed_args, kwargs=fixed_kwargs)
    typer.echo(tid)


__all__ = ["DeadLetter", "dead_app"]
