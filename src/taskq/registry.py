"""Task definitions: the ``@task`` decorator and the registry a worker runs from.

``@task`` only marks a function; nothing is registered at import time. A worker
builds a ``Registry`` from the built-in module plus the modules it is told to load.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, overload

from . import limits
from .errors import ConfigError, InvalidTask, UnknownTask
from .models import Param, TaskType, json_problem
from .schedules import Every, Schedule

F = TypeVar("F", bound=Callable[..., Any])

_ATTR = "__taskq_task__"
_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}


def _annotation(value: Any) -> str | None:
    """An annotation as its source reads: ``float``, not ``'float'`` (postponed annotations are strings)."""
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, type):
        return value.__qualname__
    return re.sub(r"\btyping\.", "", repr(value))


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    name: str
    fn: Callable[..., Any]
    max_retries: int | None
    timeout: float | None
    retry_backoff: float | None  # None: the TASKQ_RETRY_BACKOFF setting
    schedule: Schedule | None = None  # @task(schedule=...): run periodically with no arguments
    # Flow control, cluster-wide (docs/architecture.md "Flow control"): as written, and parsed.
    rate_limit: str | None = None
    key_rate_limit: str | None = None  # per ``rate_key`` given at submit
    concurrency: int | None = None
    key_concurrency: int | None = None  # per ``concurrency_key`` given at submit
    limit_args: tuple[str, ...] = ("",) * 6  # what the start script takes (store.NO_LIMITS when none)
    max_lost_runs: int | None = None  # None: the TASKQ_MAX_LOST_RUNS setting
    memory_limit: int | None = None  # bytes; set: every run is in a child process with this heap limit

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def describe(self) -> TaskType:
        """The task's name, signature and parameters, as workers advertise them."""
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError):
            return TaskType(self.name, f"{self.name}(...)")
        params = []
        for p in sig.parameters.values():
            has_default = p.default is not inspect.Parameter.empty
            variadic = p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            params.append(Param(
                name=p.name, kind=_KINDS[p.kind], type=_annotation(p.annotation),  # type: ignore[arg-type]
                required=not has_default and not variadic,
                default=p.default if has_default and json_problem(p.default) is None else None,
            ))
        returns = _annotation(sig.return_annotation)
        text = str(sig.replace(
            parameters=[p.replace(annotation=_annotation(p.annotation) or inspect.Parameter.empty)
                        for p in sig.parameters.values()],
            return_annotation=returns or inspect.Signature.empty,
        ))
        # Annotations given as strings render quoted; the signature reads as the source does.
        text = re.sub(r"'([^']*)'|\"([^\"]*)\"", lambda m: (m.group(1) or m.group(2))
                      if (m.group(1) or m.group(2)) in {p.type for p in params} | {returns} else m.group(0), text)
        doc = inspect.getdoc(self.fn)
        return TaskType(self.name, f"{self.name}{text}", params, returns, doc.splitlines()[0] if doc else None,
                        rate_limit=self.rate_limit, key_rate_limit=self.key_rate_limit,
                        concurrency=self.concurrency, key_concurrency=self.key_concurrency,
                        max_retries=self.max_retries)


@overload
def task(fn: F, /) -> F: ...
@overload
def task(
    *, name: str | None = None, max_retries: int | None = None, timeout: float | None = None,
    retry_backoff: float | None = None, schedule: str | Every | None = None, rate_limit: str | None = None,
    key_rate_limit: str | None = None, concurrency: int | None = None, key_concurrency: int | None = None,
    max_lost_runs: int | None = None, memory_limit: int | str | None = None,
) -> Callable[[F], F]: ...


def task(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int | None = None,
    timeout: float | None = None,
    retry_backoff: float | None = None,
    schedule: str | Every | None = None,
    rate_limit: str | None = None,
    key_rate_limit: str | None = None,
    concurrency: int | None = None,
    key_concurrency: int | None = None,
    max_lost_runs: int | None = None,
    memory_limit: int | str | None = None,
) -> F | Callable[[F], F]:
    """Mark a function as a taskq task. Use bare (``@task``) or with options.

    ``retry_backoff`` is the base of the exponential delay between retries (seconds); unset, the
    worker's ``TASKQ_RETRY_BACKOFF`` applies. ``schedule`` runs it periodically (no arguments): a
    cron expression in UTC (``"*/5 * * * *"``) or ``every(seconds=10)``; the schedule is named after
    the task (a module-level ``schedules`` list takes full ``Schedule`` objects).

    Flow control holds across every worker: ``rate_limit="100/s"`` (also ``/m``, ``/h``, ``5/10s``)
    caps how often it starts, ``concurrency=5`` how many run at once; ``key_rate_limit`` and
    ``key_concurrency`` do the same per key, for tasks submitted with ``rate_key=`` /
    ``concurrency_key=`` (e.g. per customer). A task over a limit waits outside the queue: it never
    takes a worker slot or holds up other tasks. ``async def`` functions run on the worker's event loop.

    ``max_lost_runs`` is how often a run lost with its worker (killed, out of memory, a crash in a
    C extension) is run again before the task ends ``dead``; unset, ``TASKQ_MAX_LOST_RUNS`` (2). A run
    after such a loss is made in a child process, so a poison task kills only that child.
    ``memory_limit`` (``"512MiB"``, ``"2Gi"`` or bytes) runs every call in a child process whose heap
    is capped: past it the task fails with ``MemoryError`` and the worker lives on."""

    def mark(f: F) -> F:
        if not callable(f):
            raise ConfigError(f"@task expects a function, got {type(f).__name__}")
        task_name = name or f.__name__
        if why := limits.task_name_problem(task_name):
            raise ConfigError(why)
        for why in (limits.max_retries_problem(max_retries), limits.timeout_problem(timeout)):
            if why:
                raise ConfigError(f"@task({task_name!r}): {why}")
        if max_lost_runs is not None and (isinstance(max_lost_runs, bool) or not isinstance(max_lost_runs, int)
                                          or not 0 <= max_lost_runs <= 1000):
            raise ConfigError(f"@task({task_name!r}): max_lost_runs must be an integer from 0 to 1000")
        try:
            memory = limits.parse_bytes(memory_limit)
        except ValueError as exc:
            raise ConfigError(f"@task({task_name!r}): {exc}") from None
        if retry_backoff is not None and (not isinstance(retry_backoff, (int, float)) or retry_backoff < 0):
            raise ConfigError(f"@task({task_name!r}): retry_backoff must be a number of seconds >= 0")
        backoff = float(retry_backoff) if retry_backoff is not None else None
        try:
            rate = limits.parse_rate(rate_limit, "rate_limit")
            key_rate = limits.parse_rate(key_rate_limit, "key_rate_limit")
        except ValueError as exc:
            raise ConfigError(f"@task({task_name!r}): {exc}") from None
        for why in (limits.concurrency_problem(concurrency), limits.concurrency_problem(key_concurrency,
                                                                                         "key_concurrency")):
            if why:
                raise ConfigError(f"@task({task_name!r}): {why}")
        limit_args = (
            *((repr(rate[0]), repr(rate[1])) if rate else ("", "")),
            *((repr(key_rate[0]), repr(key_rate[1])) if key_rate else ("", "")),
            str(concurrency) if concurrency else "", str(key_concurrency) if key_concurrency else "",
        )
        periodic = None
        if schedule is not None:
            if not isinstance(schedule, (str, Every)):
                raise ConfigError(f"@task({task_name!r}): schedule must be a cron expression or every(seconds=...)")
            when = {"cron": schedule} if isinstance(schedule, str) else {"every": schedule.seconds}
            try:
                periodic = Schedule(task_name, task_name, **when, source="code")
            except InvalidTask as exc:
                raise ConfigError(f"@task({task_name!r}): {exc}") from exc
        setattr(f, _ATTR, TaskDefinition(task_name, f, max_retries, timeout, backoff, periodic, rate_limit,
                                         key_rate_limit, concurrency, key_concurrency, limit_args,
                                         max_lost_runs, memory))
        return f

    return mark(fn) if fn is not None else mark


class Registry:
    """The task functions one worker can run, by name."""

    def __init__(self, definitions: Iterable[TaskDefinition] = ()) -> None:
        self._defs: dict[str, TaskDefinition] = {}
        self._schedules: dict[str, Schedule] = {}
        self.modules: list[str] = []  # what ``load`` imported, so a child process can do the same
        for d in definitions:
            self.add(d)

    def add(self, definition: TaskDefinition) -> None:
        existing = self._defs.get(definition.name)
        if existing is not None and existing.fn is not definition.fn:
            raise ConfigError(
                f"task name {definition.name!r} is defined twice "
                f"({existing.fn.__module__}.{existing.fn.__qualname__} and "
                f"{definition.fn.__module__}.{definition.fn.__qualname__}); give one of them name=..."
            )
        self._defs[definition.name] = definition
        if definition.schedule is not None:
            self.add_schedule(definition.schedule)

    def add_schedule(self, schedule: Schedule) -> None:
        """A schedule the worker declares in Redis at start."""
        existing = self._schedules.get(schedule.name)
        if existing is not None and existing.spec() != schedule.spec():
            raise ConfigError(f"schedule name {schedule.name!r} is declared twice with different definitions")
        self._schedules[schedule.name] = schedule

    def add_module(self, module: ModuleType) -> None:
        for value in vars(module).values():
            d = getattr(value, _ATTR, None)
            if isinstance(d, TaskDefinition):
                self.add(d)
        declared = getattr(module, "schedules", None)
        if declared is not None:
            if not isinstance(declared, (list, tuple)) or not all(isinstance(s, Schedule) for s in declared):
                raise ConfigError(f"{module.__name__}.schedules must be a list of taskq.Schedule")
            for s in declared:
                self.add_schedule(s)

    @classmethod
    def load(cls, modules: Iterable[str] = (), *, builtins: bool = True) -> Registry:
        """Build a registry from the built-in tasks and the named modules."""
        reg = cls()
        names = list(dict.fromkeys((["taskq.builtins"] if builtins else []) + list(modules)))
        for mod_name in names:
            try:
                module = importlib.import_module(mod_name)
            except ImportError as exc:
                raise ConfigError(f"cannot import tasks module {mod_name!r}: {exc}") from exc
            reg.add_module(module)
            reg.modules.append(mod_name)
        return reg

    def get(self, name: str) -> TaskDefinition:
        try:
            return self._defs[name]
        except KeyError:
            raise UnknownTask(f"unknown task {name!r}; known: {', '.join(sorted(self._defs)) or '(none)'}") from None

    def find(self, name: str) -> TaskDefinition | None:
        return self._defs.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._defs)

    @property
    def schedules(self) -> list[Schedule]:
        """The code-declared schedules: ``@task(schedule=...)`` and the modules' ``schedules`` lists."""
        return [self._schedules[n] for n in sorted(self._schedules)]

    def describe(self) -> dict[str, TaskType]:
        return {n: self._defs[n].describe() for n in self.names}
