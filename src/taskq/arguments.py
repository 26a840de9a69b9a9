"""A task's arguments checked against its function's type annotations, before the call.

JSON gives a task strings, numbers, booleans, lists, objects and null; what its annotations say it
takes is checked in strict mode (no coercion: ``"3"`` is not an ``int``), so ``multiply("x",
2000000000)`` against ``multiply(a: float, b: float)`` fails cleanly instead of building a 2 GB
string in the worker. pydantic (already a dependency) does the checking: annotations it cannot
build a validator for (a class of the task's own, say) are left unchecked.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError


@functools.cache
def _checkers(fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]] | None:
    """The signature and a validator per annotated parameter (None: no signature to check against)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation naming what cannot be imported: check the arity only
        hints = {}
    checkers: dict[str, Any] = {}
    for name, param in sig.parameters.items():
        hint = hints.get(name)
        if hint is None or hint is Any:
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            hint = list[hint]  # type: ignore[valid-type]
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            hint = dict[str, hint]  # type: ignore[valid-type]
        try:
            checkers[name] = TypeAdapter(hint, config={"strict": True, "arbitrary_types_allowed": True})
        except Exception:  # noqa: BLE001,S112 - a type pydantic cannot check is left to the task
            continue
    return sig, checkers


def argument_problem(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> str | None:
    """Why ``fn(*args, **kwargs)`` does not fit ``fn``'s signature and annotations, or None."""
    found = _checkers(fn)
    if found is None:
        return None
    sig, checkers = found
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return None  # the wrong number of arguments: the call itself says so, in Python's own words
    for name, value in bound.arguments.items():
        checker = checkers.get(name)
        if checker is None:
            continue
        try:
            checker.validate_python(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = "".join(f"[{p!r}]" for p in err["loc"])
            return f"argument {name!r}{where}: {err['msg']} (got {_short(value)})"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
