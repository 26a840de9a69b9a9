"""The bounds on what a task may ask for, defined once.

``@task``, the SDK, the HTTP API's schemas and the wire format all check these same numbers, so a
value one of them accepts is never refused by another (a 10-day time limit fails everywhere, with
the same message). Each check returns why a value is out of bounds, or None.
"""

from __future__ import annotations

import re
from typing import Any

TASK_NAME_MAX = 200
TASK_NAME_RE = re.compile(rf"^[A-Za-z_][A-Za-z0-9_.:-]{{0,{TASK_NAME_MAX - 1}}}$")
MAX_RETRIES_MAX = 1000
TIMEOUT_MAX = 7 * 24 * 3600.0  # a week: longer runs belong in a workflow, not one task
DELAY_MAX = 366 * 24 * 3600.0
KEY_MAX = 256  # ordering keys and idempotency keys
BATCH_MAX = 1000
TASK_ID_MAX = 200


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def task_name_problem(name: Any) -> str | None:
    if isinstance(name, str) and TASK_NAME_RE.match(name):
        return None
    return (f"task name {name!r} is invalid: use up to {TASK_NAME_MAX} letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or '_'")


def max_retries_problem(value: Any) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RETRIES_MAX):
        return None
    return f"max_retries must be an integer from 0 to {MAX_RETRIES_MAX}, got {value!r}"


def timeout_problem(value: Any) -> str | None:
    if value is None or (_is_number(value) and 0 < value <= TIMEOUT_MAX):
        return None
    return f"timeout must be a number of seconds above 0 and at most {TIMEOUT_MAX:g} (7 days), got {value!r}"


def delay_problem(value: Any) -> str | None:
    if value is None or (_is_number(value) and 0 <= value <= DELAY_MAX):
        return None
    return f"delay must be a number of seconds from 0 to {DELAY_MAX:g} (366 days), got {value!r}"


def key_problem(value: Any, what: str = "key") -> str | None:
    if value is None or (isinstance(value, str) and 0 < len(value) <= KEY_MAX):
        return None
    return f"{what} must be a string of 1 to {KEY_MAX} characters"
