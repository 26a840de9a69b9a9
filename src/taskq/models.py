"""What travels on Kafka (``TaskMessage``) and what Redis keeps (``TaskRecord``)."""

from __future__ import annotations

import enum
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import orjson
from typing_extensions import TypedDict

from . import limits
from .errors import InvalidMessage

WIRE_VERSION = 1


class TaskState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


# The one definition of which states are final, which can be cancelled and which retried by hand:
# the Lua scripts, the HTTP API's /api/meta (read by the UI) and the chart's test pod take them from here.
TERMINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED, TaskState.DEAD, TaskState.CANCELLED})
CANCELLABLE_STATES = frozenset({TaskState.QUEUED, TaskState.RETRYING})
RETRYABLE_STATES = frozenset({TaskState.FAILED, TaskState.DEAD, TaskState.CANCELLED})


def new_task_id() -> str:
    return uuid.uuid4().hex


# Arguments and results are JSON that every client reads back exactly: finite numbers, integers
# that fit in 64 bits (what orjson writes and most JSON libraries keep exact), nesting bounded.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
MAX_NESTING = 32
GEN_MAX = 2**53  # Lua reads numbers as doubles: beyond this a generation no longer counts up
CREATED_AT_MAX = 32503680000.0  # the year 3000: beyond is a bug of the producer


def json_problem(value: Any, where: str = "args", level: int = 0) -> str | None:
    """Why ``value`` would not survive a JSON round trip unchanged, or None when it does."""
    if level > MAX_NESTING:
        return f"{where}: nested deeper than {MAX_NESTING} levels"
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return f"{where}: the integer {value} does not fit in 64 bits (-2**63 .. 2**64-1); send it as a string"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{where}: {value} is not a number JSON can carry (NaN and Infinity are refused)"
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if why := json_problem(v, f"{where}[{i}]", level + 1):
                return why
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where}: key {k!r} is not a string"
            if why := json_problem(v, f"{where}[{k!r}]", level + 1):
                return why
        return None
    return f"{where}: a {type(value).__name__} is not JSON (use lists, objects, strings, numbers, booleans, null)"


# orjson reads integers beyond 64 bits as floats (silently changing them): such a long digit run
# sends a message through the exact, slower check.
_LONG_DIGITS = re.compile(rb"\d{19}")


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _exact_int(text: str) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidMessage(f"integer {text[:40]} does not fit in 64 bits")
    return value


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """One request to run a task, as produced to the tasks topic.

    ``gen`` counts how many messages were produced for this task id (retries and
    requeues produce new ones); a worker ignores a message older than the record's.
    """

    id: str
    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    gen: int = 0
    max_retries: int | None = None
    timeout: float | None = None
    created_at: float = field(default_factory=time.time)
    priority: str = "normal"  # the lane (topic) it travels in: high | normal | low
    rate_key: str | None = None  # the key its task's per-key rate limit counts it under
    concurrency_key: str | None = None  # the key its task's per-key concurrency limit counts it under
    # W3C trace context of the submitter; it travels in the Kafka headers, not in the JSON body.
    trace: str | None = None

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "v": WIRE_VERSION,
            "id": self.id,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "gen": self.gen,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "created_at": self.created_at,
        }
        # Optional fields are written only when set: a plain task's message stays as it was.
        if self.priority != "normal":
            body["priority"] = self.priority
        if self.rate_key is not None:
            body["rate_key"] = self.rate_key
        if self.concurrency_key is not None:
            body["concurrency_key"] = self.concurrency_key
        return orjson.dumps(body)

    def headers(self) -> list[tuple[str, bytes]] | None:
        """The Kafka headers of its message (the trace context), or None."""
        return [("traceparent", self.trace.encode())] if self.trace else None

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> TaskMessage:
        if raw is None:
            raise InvalidMessage("empty message (no value)")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(f"not JSON: {exc}") from exc
        if _LONG_DIGITS.search(raw):
            try:
                json.loads(raw, parse_int=_exact_int)
            except RecursionError as exc:
                raise InvalidMessage("nested too deep to read") from exc
            except ValueError as exc:
                raise InvalidMessage(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidMessage("message is not a JSON object")
        if data.get("v") != WIRE_VERSION:
            raise InvalidMessage(f"unsupported wire version {data.get('v')!r} (expected {WIRE_VERSION})")
        tid, name = data.get("id"), data.get("task")
        # A null optional field reads as an absent one: producers in other languages write them.
        args, kwargs = _or(data.get("args"), []), _or(data.get("kwargs"), {})
        if not isinstance(tid, str) or not tid or len(tid) > limits.TASK_ID_MAX:
            raise InvalidMessage(f"field 'id' must be a non-empty string of at most {limits.TASK_ID_MAX} characters")
        if why := limits.task_name_problem(name):
            raise InvalidMessage(f"field 'task': {why}")
        assert isinstance(name, str)
        if not isinstance(args, list):
            raise InvalidMessage("field 'args' must be a list")
        if not isinstance(kwargs, dict):
            raise InvalidMessage("field 'kwargs' must be an object")
        # The same bounds as at submit: what a worker stores and passes on must encode again.
        if why := json_problem(args, "args") or json_problem(kwargs, "kwargs"):
            where, _, what = why.partition(": ")
            if "nested deeper" in what:  # the path to the culprit is as deep as the nesting: name the field
                field_name = where.split("[", 1)[0]
                raise InvalidMessage(f"field {field_name!r} is {what} (at {where[:60]}...)")
            raise InvalidMessage(f"field {why}")
        gen = _or(data.get("gen"), 0)
        if not isinstance(gen, int) or isinstance(gen, bool) or not 0 <= gen <= GEN_MAX:
            raise InvalidMessage(f"field 'gen' must be an integer from 0 to {GEN_MAX}")
        max_retries = data.get("max_retries")
        if why := limits.max_retries_problem(max_retries):
            raise InvalidMessage(f"field 'max_retries': {why}")
        timeout = data.get("timeout")
        if why := limits.timeout_problem(timeout):
            raise InvalidMessage(f"field 'timeout': {why}")
        created_at = _or(data.get("created_at"), time.time())
        if (not isinstance(created_at, (int, float)) or isinstance(created_at, bool)
                or not 0 <= created_at <= CREATED_AT_MAX):
            raise InvalidMessage(f"field 'created_at' must be a Unix time in seconds (0 to {CREATED_AT_MAX:.0f})")
        priority = data.get("priority")
        if priority is None:  # absent or null: the normal lane (a None would reach Redis as no value)
            priority = "normal"
        if why := limits.priority_problem(priority):
            raise InvalidMessage(f"field 'priority': {why}")
        rate_key, concurrency_key = data.get("rate_key"), data.get("concurrency_key")
        for fname, value in (("rate_key", rate_key), ("concurrency_key", concurrency_key)):
            if why := limits.key_problem(value, fname):
                raise InvalidMessage(f"field {fname!r}: {why}")
        return cls(
            id=tid,
            task=name,
            args=args,
            kwargs=kwargs,
            gen=gen,
            max_retries=max_retries,
            timeout=float(timeout) if timeout is not None else None,
            created_at=float(created_at),
            priority=priority,
            rate_key=rate_key,
            concurrency_key=concurrency_key,
        )


def _opt_float(v: str | None) -> float | None:
    return float(v) if v not in (None, "") else None


class Attempt(TypedDict, total=False):
    """One run of a task, as its record's history keeps it."""

    attempt: int
    worker: str
    started_at: float
    finished_at: float
    outcome: str  # success | failed | dead | retry | lost
    reason: str  # first delivery | retry | redelivered: worker X was lost | ...
    error: str


def _first_delivery(h: dict[str, str]) -> list[Attempt]:
    """The history Redis leaves implicit: one first delivery, told by the record's own fields."""
    if h.get("attempts") != "1" or not h.get("started_at"):
        return []
    attempt = Attempt(attempt=1, worker=h.get("worker", ""), started_at=float(h["started_at"]),
                      reason="first delivery")
    if h.get("finished_at"):
        attempt["finished_at"] = float(h["finished_at"])
        attempt["outcome"] = h["status"]
    if h.get("error"):
        attempt["error"] = h["error"]
    return [attempt]


def _int64(raw: str) -> int:
    """A count read back from Redis; past 64 bits it is damage (JSON encoders refuse it), not a count."""
    value = int(raw)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{raw[:30]} is out of range")
    return value


@dataclass(slots=True)
class TaskRecord:
    """A task as Redis keeps it: its request, state, outcome and attempt history."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    status: TaskState
    result: Any = None
    error: str | None = None
    attempts: int = 0
    worker: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    max_retries: int | None = None
    timeout: float | None = None
    history: list[Attempt] = field(default_factory=list)
    eta: float | None = None  # when a delayed task, or its latest retry, is (or was) due
    workflow: str | None = None  # the id of the workflow this task is a step of
    priority: str = "normal"
    rate_key: str | None = None
    concurrency_key: str | None = None
    progress: float | None = None  # 0..1, as the running task last reported it
    progress_message: str | None = None
    cancel_requested: bool = False  # cancel was asked while it ran; the task may stop early
    waiting_for: str | None = None  # why a queued task is held back: "rate limit" | "concurrency limit"
    trace: str | None = None  # the submitter's W3C traceparent
    traceback: str | None = None  # the latest failure's whole traceback (the error is its last line)
    # After a retry by hand: the last attempt whose failure is still retried (its fresh budget).
    retry_limit: int | None = None

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> TaskRecord:
        """The record from its Redis hash. A field that cannot be read (a hash written by hand, or
        by a bug) does not make the record unreadable: it is left out and ``error`` says which, so a
        list page or the event stream shows the task instead of failing."""
        try:
            return cls._from_hash(h)
        except (ValueError, KeyError, TypeError) as exc:
            return cls._from_damaged_hash(h, exc)

    @classmethod
    def _from_damaged_hash(cls, h: dict[str, str], exc: Exception) -> TaskRecord:
        bad: list[str] = []

        def read(name: str, parse: Callable[[str], Any], default: Any) -> Any:
            raw = h.get(name)
            if raw in (None, ""):
                return default
            try:
                return parse(raw)
            except (ValueError, TypeError):
                bad.append(name)
                return default

        status = read("status", TaskState, None)
        if status is None and "status" not in bad:
            bad.append("status")
        note = f"record unreadable in part ({', '.join(bad) or type(exc).__name__}: {str(exc)[:200]})"
        return cls(
            id=h.get("id") or "?", task=h.get("task", ""),
            args=read("args", orjson.loads, []), kwargs=read("kwargs", orjson.loads, {}),
            status=status or TaskState.FAILED,
            result=read("result", orjson.loads, None),
            error=f"{h.get('error') or ''} [{note}]".strip(),
            attempts=read("attempts", _int64, 0), worker=h.get("worker") or None,
            created_at=read("created_at", float, None), started_at=read("started_at", float, None),
            finished_at=read("finished_at", float, None), max_retries=read("max_retries", _int64, None),
            timeout=read("timeout", float, None), history=read("history", orjson.loads, []),
            eta=read("eta", float, None), workflow=h.get("wf") or None, priority=h.get("pr") or "normal",
        )

    @classmethod
    def _from_hash(cls, h: dict[str, str]) -> TaskRecord:
        return cls(
            id=h["id"],
            task=h.get("task", ""),
            args=orjson.loads(h.get("args") or "[]"),
            kwargs=orjson.loads(h.get("kwargs") or "{}"),
            status=TaskState(h["status"]),
            result=orjson.loads(h["result"]) if h.get("result") else None,
            error=h.get("error") or None,
            attempts=_int64(h.get("attempts") or "0"),
            worker=h.get("worker") or None,
            created_at=_opt_float(h.get("created_at")),
            started_at=_opt_float(h.get("started_at")),
            finished_at=_opt_float(h.get("finished_at")),
            max_retries=_int64(h["max_retries"]) if h.get("max_retries") else None,
            timeout=_opt_float(h.get("timeout")),
            history=orjson.loads(h["history"]) if h.get("history") else _first_delivery(h),
            eta=_opt_float(h.get("eta")),
            workflow=h.get("wf") or None,
            priority=h.get("pr") or "normal",
            rate_key=h.get("rk") or None,
            concurrency_key=h.get("ck") or None,
            progress=_opt_float(h.get("prog")),
            progress_message=h.get("progm") or None,
            cancel_requested=h.get("cxl") == "1",
            waiting_for=h.get("held") or None,
            trace=h.get("tp") or None,
            traceback=h.get("tb") or None,
            retry_limit=_int64(h["retry_limit"]) if h.get("retry_limit") else None,
        )

    def message(self, gen: int) -> TaskMessage:
        """The message that runs this record again (a retry, a delayed or held-back task coming due)."""
        return TaskMessage(id=self.id, task=self.task, args=self.args, kwargs=self.kwargs, gen=gen,
                           max_retries=self.max_retries if self.retry_limit is None
                           else min(self.retry_limit, limits.MAX_RETRIES_MAX),  # the wire's bound
                           timeout=self.timeout, created_at=self.created_at or time.time(), priority=self.priority,
                           rate_key=self.rate_key, concurrency_key=self.concurrency_key, trace=self.trace)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data: what the CLI prints and the HTTP API returns."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class WorkerInfo:
    """A worker as its heartbeat describes it; ``lost`` once the heartbeat expired."""

    id: str
    status: Literal["alive", "lost", "stopped"]
    last_heartbeat: float | None
    current_tasks: int
    processed: int
    failed: int
    partitions: list[int]
    concurrency: int
    tasks: list[str]
    started_at: float | None
    quiet: bool = False  # takes no new tasks (an operator quieted it); finishes what it runs
    # Those of a lost worker's partitions (as it last reported them) that no live worker holds yet:
    # they wait for the group to hand them over (empty for an alive or stopped worker, and once done).
    lost_partitions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


ParamKind = Literal["positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword"]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a task function, for forms and clients that build calls."""

    name: str
    kind: ParamKind
    type: str | None = None  # the annotation as written ("float", "list[int]"); None when unannotated
    required: bool = True
    default: Any = None  # the default when it is JSON, else None


@dataclass(frozen=True, slots=True)
class TaskType:
    """A task a live worker can run: its name, signature text and parameters."""

    name: str
    signature: str  # e.g. ``add(a: float, b: float) -> float``
    params: list[Param] = field(default_factory=list)
    returns: str | None = None
    doc: str | None = None
    rate_limit: str | None = None  # flow control, as the task declares it (see ``@task``)
    key_rate_limit: str | None = None
    concurrency: int | None = None
    key_concurrency: int | None = None
    paused: bool = False  # an operator paused the type: its tasks wait until it is resumed
    held: int = 0  # how many of its tasks a pause holds back now
    max_retries: int | None = None  # its @task's; a retry by hand grants as many again

    @classmethod
    def from_json(cls, name: str, value: Any) -> TaskType:
        """What a worker advertises; a plain signature string from a worker of an older version."""
        if isinstance(value, str):
            return cls(name, value)
        params = [Param(**p) for p in value.get("params", [])]
        return cls(name, value.get("signature", name), params, value.get("returns"), value.get("doc"),
                   value.get("rate_limit"), value.get("key_rate_limit"), value.get("concurrency"),
                   value.get("key_concurrency"), max_retries=value.get("max_retries"))


@dataclass(frozen=True, slots=True)
class Timing:
    """Percentiles of a duration (seconds) from a sketch, each within ``relative_error`` of the
    true value (taskq.sketch); the mean is exact."""

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    relative_error: float | None = None


@dataclass(frozen=True, slots=True)
class TypeMetrics:
    """One task type over a window: outcomes, failure rate, run time and wait time (submit to start)."""

    task: str
    window: float  # seconds
    counts: dict[str, int]  # finished runs by outcome: success, failed, dead, retrying, cancelled
    finished: int
    failure_rate: float | None  # failed + dead over the runs that ended (retried runs excluded)
    run: Timing
    wait: Timing


@dataclass(frozen=True, slots=True)
class Stats:
    """The numbers an overview shows: tasks per state, finished per second, lag, live workers."""

    counts: dict[str, int]
    workers_alive: int
    throughput: dict[str, float]  # finished tasks per second over the last minute, by outcome
    lag: dict[str, int] | None  # consumer lag per partition; None while Kafka cannot be asked
    lag_total: int | None
