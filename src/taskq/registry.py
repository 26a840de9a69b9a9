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

from .errors import ConfigError, UnknownTask

F = TypeVar("F", bound=Callable[..., Any])

_ATTR = "__taskq_task__"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    name: str
    fn: Callable[..., Any]
    max_retries: int | None
    timeout: float | None
    retry_backoff: float

    @property
    def signature(self) -> str:
        try:
            return f"{self.name}{inspect.signature(self.fn)}"
        except (TypeError, ValueError):
            return f"{self.name}(...)"


@overload
def task(fn: F, /) -> F: ...
@overload
def task(
    *, name: str | None = None, max_retries: int | None = None, timeout: float | None = None,
    retry_backoff: float = 1.0,
) -> Callable[[F], F]: ...


def task(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int | None = None,
    timeout: float | None = None,
    retry_backoff: float = 1.0,
) -> F | Callable[[F], F]:
    """Mark a function as a taskq task. Use bare (``@task``) or with options."""

    def mark(f: F) -> F:
        if not callable(f):
            raise ConfigError(f"@task expects a function, got {type(f).__name__}")
        task_name = name or f.__name__
        if not _NAME_RE.match(task_name):
            raise ConfigError(
                f"task name {task_name!r} is invalid: use letters, digits, '_', '.', ':' or '-' "
                "and start with a letter or '_'"
            )
        if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
            raise ConfigError(f"@task({task_name!r}): max_retries must be an integer >= 0, got {max_retries!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigError(f"@task({task_name!r}): timeout must be a positive number of seconds, got {timeout!r}")
        if retry_backoff < 0:
            raise ConfigError(f"@task({task_name!r}): retry_backoff must be >= 0 seconds")
        setattr(f, _ATTR, TaskDefinition(task_name, f, max_retries, timeout, float(retry_backoff)))
        return f

    return mark(fn) if fn is not None else mark


class Registry:
    """The task functions one worker can run, by name."""

    def __init__(self, definitions: Iterable[TaskDefinition] = ()) -> None:
        self._defs: dict[str, TaskDefinition] = {}
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

    def add_module(self, module: ModuleType) -> None:
        for value in vars(module).values():
            d = getattr(value, _ATTR, None)
            if isinstance(d, TaskDefinition):
                self.add(d)

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

    def __contains__(self, name: object) -> bool:
        return name in self._defs

    @property
    def names(self) -> list[str]:
        return sorted(self._defs)

    def signatures(self) -> dict[str, str]:
        return {n: self._defs[n].signature for n in self.names}
