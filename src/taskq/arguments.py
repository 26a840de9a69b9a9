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


# What a submitter can check without the task's code: the parameters a live worker advertises, with
# their annotations as text. Only plain JSON types are checked; any other annotation is left to the
# worker's own check before the call.
_SIMPLE: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
    "None": lambda v: v is None,
    "Any": lambda v: True,
}


def _fits(annotation: str, value: Any) -> bool | None:
    """Whether ``value`` fits a simple annotation; None when the annotation is not one we read."""
    text = annotation.replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[9:-1] + "|None"
    results = []
    for part in text.split("|"):
        base = part.split("[", 1)[0].removeprefix("typing.")
        base = {"List": "list", "Dict": "dict", "NoneType": "None"}.get(base, base)
        check = _SIMPLE.get(base)
        if check is None:
            return None
        results.append(check(value))
    return any(results)


def advertised_problem(signature: str, params: list[Any], args: list[Any], kwargs: dict[str, Any]) -> str | None:
    """Why a call does not fit a task's advertised parameters (``models.Param``), or None."""
    positional = [p for p in params if p.kind in ("positional_only", "positional_or_keyword")]
    var_args = any(p.kind == "var_positional" for p in params)
    var_kwargs = any(p.kind == "var_keyword" for p in params)
    if len(args) > len(positional) and not var_args:
        return f"{signature} takes {len(positional)} positional argument(s), {len(args)} given"
    given: dict[str, Any] = {p.name: v for p, v in zip(positional, args, strict=False)}
    by_name = {p.name: p for p in params if p.kind not in ("var_positional", "var_keyword")}
    for name, value in kwargs.items():
        p = by_name.get(name)
        if p is None or p.kind == "positional_only":
            if not var_kwargs:
                return f"{signature} has no parameter {name!r}"
            continue
        if name in given:
            return f"{signature}: argument {name!r} is given twice"
        given[name] = value
    for p in by_name.values():
        if p.required and p.name not in given:
            return f"{signature}: missing argument {p.name!r}"
    for name, value in given.items():
        annotation = by_name[name].type
        if annotation and _fits(annotation, value) is False:
            return f"{signature}: argument {name!r} must be {annotation}, got {type(value).__name__} {_short(value)}"
    return None
