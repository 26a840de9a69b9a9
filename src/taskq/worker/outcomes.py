"""What a finished run becomes (success, failed, a retry with its due time, dead) and dead letters.

Pure decisions plus one Kafka write each, so they are tested without a worker loop.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import TaskqError
from ..kafka import Producer, Record
from ..limits import cut_text
from ..logs import Log
from ..metrics import UNDECODABLE, WorkerMetrics
from ..models import TaskMessage, TaskState
from ..registry import Registry
from ..settings import Settings
from ..store import ERROR_MAX, Finish
from .execute import Outcome


def classify(msg: TaskMessage, attempt: int, out: Outcome, *, registry: Registry, settings: Settings,
             now: Callable[[], float] = time.time, jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
             ) -> Finish:
    """Success, failed, a retry (with its due time) or dead (retries exhausted)."""
    if out.ok:
        return Finish(msg.id, attempt, TaskState.SUCCESS, out.result)
    if out.cancelled:
        return Finish(msg.id, attempt, TaskState.CANCELLED, error=out.error)
    if not out.retryable:
        return Finish(msg.id, attempt, TaskState.FAILED, error=out.error)
    defn = registry.find(msg.task)
    if msg.max_retries is not None:
        max_retries = msg.max_retries
    elif defn is not None and defn.max_retries is not None:
        max_retries = defn.max_retries
    else:
        max_retries = settings.default_max_retries
    if attempt <= max_retries:
        if out.retry_delay is not None:
            delay = out.retry_delay
        else:
            base = settings.retry_backoff if defn is None or defn.retry_backoff is None else defn.retry_backoff
            # Exponential with jitter so a burst of failures does not retry in lockstep.
            delay = min(settings.retry_backoff_max, base * 2 ** (attempt - 1)) * jitter()
        return Finish(msg.id, attempt, TaskState.RETRYING, error=out.error, due=now() + delay)
    if max_retries > 0:
        return Finish(msg.id, attempt, TaskState.DEAD, error=out.error)
    return Finish(msg.id, attempt, TaskState.FAILED, error=out.error)


# A dead letter always fits in one Kafka message (the broker's default limit is 1 MiB): what would
# not fit is cut, and the letter says what was cut and how big it was. Nothing is retried for ever
# because it is too large.
DEAD_LETTER_MAX = 900_000
RAW_KEEP = 600_000  # raw bytes kept whole (base64 makes 800 kB of them)
ERROR_KEEP = ERROR_MAX
TRACEBACK_KEEP = 64_000
PREVIEW_KEEP = 64_000


def _json_or_none(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return None


class DeadLetters:
    """Writes to the dead-letter topic: tasks whose retries ran out, poison tasks (their runs keep
    losing their worker) and messages that can never run (undecodable, or impossible to start)."""

    def __init__(self, *, settings: Settings, producer: Producer, metrics: WorkerMetrics,
                 log: Log, worker_id: str) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.log = log
        self.worker_id = worker_id

    def _task_envelope(self, msg: TaskMessage, reason: str, **extra: Any) -> bytes:
        """The letter of a decoded task, its arguments whole when they fit, else a preview."""
        envelope: dict[str, Any] = {"reason": reason, "id": msg.id, "task": msg.task, "args": msg.args,
                                    "kwargs": msg.kwargs, **extra, "worker": self.worker_id, "at": time.time()}
        envelope["error"] = cut_text(envelope.get("error"), ERROR_KEEP)
        envelope["traceback"] = cut_text(envelope.get("traceback"), TRACEBACK_KEEP)
        body = _json_or_none(envelope)
        if body is not None and len(body) <= DEAD_LETTER_MAX:
            return body
        whole = _json_or_none({"args": msg.args, "kwargs": msg.kwargs})
        size = len(whole) if whole is not None else None
        preview = whole[:PREVIEW_KEEP].decode(errors="replace") if whole is not None else repr(msg.args)[:PREVIEW_KEEP]
        envelope |= {"args": None, "kwargs": None, "arguments_preview": preview, "arguments_bytes": size,
                     "cut": "the arguments did not fit in a dead letter: see arguments_preview"}
        return orjson.dumps(envelope, default=str)

    def exhausted(self, msg: TaskMessage, out: Outcome, attempts: int) -> bool:
        """The dead letter of a run whose retries are exhausted; False if Kafka refused it."""
        body = self._task_envelope(msg, "retries exhausted", error=out.error, traceback=out.traceback,
                                   attempts=attempts)
        try:
            self.producer.send_raw(self.settings.dead_topic, body, key=msg.id.encode())
        except TaskqError as exc:
            self.metrics.kafka_error()
            self.log.warning("dead letter for %s not written yet (%s); will retry", msg.id, exc)
            return False
        self.metrics.dead_lettered(msg.task)
        return True

    def poison(self, msg: TaskMessage, error: str) -> None:
        """The letter of a task ended dead because its runs kept losing their worker (the record
        already says so: a refused write is logged, not retried)."""
        body = self._task_envelope(msg, "worker lost too often", error=error)
        try:
            self.producer.send_raw(self.settings.dead_topic, body, key=msg.id.encode())
            self.metrics.dead_lettered(msg.task)
        except TaskqError as exc:
            self.metrics.kafka_error()
            self.log.error("could not dead-letter poison task %s (its record says dead): %s", msg.id, exc)

    def undecodable(self, rec: Record, reason: str) -> None:
        topic = self.settings.tasks_topic
        self.log.warning("undecodable message at %s[%d]@%d: %s -> %s", topic, rec.partition,
                         rec.offset, cut_text(reason, 300), self.settings.dead_topic)
        raw = rec.value or b""
        envelope: dict[str, Any] = {
            "reason": cut_text(reason, ERROR_KEEP),
            "topic": topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "value_b64": base64.b64encode(raw[:RAW_KEEP]).decode(),
            "value_bytes": len(raw),
            "value_null": rec.value is None,
            "worker": self.worker_id,
            "at": time.time(),
        }
        if len(raw) > RAW_KEEP:
            envelope["cut"] = f"value_b64 holds the first {RAW_KEEP} of {len(raw)} bytes"
        try:
            self.producer.send_raw(self.settings.dead_topic, orjson.dumps(envelope), key=rec.key)
            self.metrics.dead_lettered(UNDECODABLE)
        except TaskqError as exc:
            self.metrics.kafka_error()
            self.log.error("could not dead-letter offset %d: %s", rec.offset, exc)
