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


# --- flow control (rate limits, concurrency limits, priorities) ------------------------
PRIORITIES = ("high", "normal", "low")  # the lanes, most urgent first
CONCURRENCY_MAX = 100_000
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
                 "h": 3600.0, "hour": 3600.0}


def parse_rate(value: Any, what: str = "rate_limit") -> tuple[float, float] | None:
    """``"100/s"``, ``"10/m"``, ``"5/10s"`` -> (tasks, per seconds); None for None; ValueError if malformed."""
    if value is None:
        return None
    m = _RATE_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{what} {value!r} is malformed: use N/s, N/m, N/h or N/<k>s (e.g. '100/s', '5/10s')")
    count, per = float(m.group(1)), float(m.group(2) or 1) * _UNIT_SECONDS[m.group(3)]
    if count <= 0 or per <= 0 or count / per > 1_000_000:
        raise ValueError(f"{what} {value!r} is out of range: above 0 and at most 1,000,000 per second")
    return count, per


def concurrency_problem(value: Any, what: str = "concurrency") -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= CONCURRENCY_MAX):
        return None
    return f"{what} must be an integer from 1 to {CONCURRENCY_MAX}, got {value!r}"


def priority_problem(value: Any) -> str | None:
    if value is None or value in PRIORITIES:
        return None
    return f"priority {value!r} is unknown: use one of {', '.join(PRIORITIES)}"


# W3C trace context: version-traceid-parentid-flags, lowercase hex (https://www.w3.org/TR/trace-context/).
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def traceparent_problem(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and _TRACEPARENT_RE.match(value)
                         and value[3:35] != "0" * 32 and value[36:52] != "0" * 16):
        return None
    return f"traceparent {value!r} is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>)"


def cut_text(text: str | None, keep: int) -> str | None:
    """``text`` at most ``keep`` characters, saying how many were cut (records, dead letters)."""
    if text is None or len(text) <= keep:
        return text
    return f"{text[:keep]}... [cut: {len(text) - keep} more characters]"


MEMORY_MIN = 16 * 1024 * 1024  # below this a Python child cannot even import its task module
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|k|M|G|T|Ki|Mi|Gi|Ti)?\s*$")
_BYTE_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "k": 10**3, "M": 10**6,
               "G": 10**9, "T": 10**12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "Ki": 2**10,
               "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_bytes(value: Any, what: str = "memory_limit") -> int | None:
    """``512MiB``, ``2Gi``, ``1.5GB`` or a number of bytes; None stays None. Raises ValueError saying why."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _BYTES_RE.match(value) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"{what} {value!r} is malformed: use bytes or a size such as '512MiB' or '2Gi'")
        n = int(float(m.group(1)) * _BYTE_UNITS[m.group(2)])
    if n < MEMORY_MIN:
        raise ValueError(f"{what} {value!r} is below the minimum of {MEMORY_MIN // 2**20}MiB")
    return n
