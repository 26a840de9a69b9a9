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
from ..logs import Log
from ..metrics import WorkerMetrics
from ..models import TaskMessage, TaskState
from ..registry import Registry
from ..settings import Settings
from ..store import Finish
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


class DeadLetters:
    """Writes to the dead-letter topic: tasks whose retries ran out, and undecodable messages."""

    def __init__(self, *, settings: Settings, producer: Producer, metrics: WorkerMetrics,
                 log: Log, worker_id: str) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.log = log
        self.worker_id = worker_id

    def exhausted(self, msg: TaskMessage, out: Outcome, attempts: int) -> bool:
        """The dead letter of a run whose retries are exhausted; False if Kafka refused it."""
        envelope: dict[str, Any] = {
            "reason": "retries exhausted", "id": msg.id, "task": msg.task, "args": msg.args, "kwargs": msg.kwargs,
            "error": out.error, "traceback": out.traceback, "attempts": attempts,
            "worker": self.worker_id, "at": time.time(),
        }
        try:
            self.producer.send_raw(self.settings.dead_topic, orjson.dumps(envelope, default=str),
                                   key=msg.id.encode())
        except TaskqError as exc:
            self.metrics.kafka_error()
            self.log.warning("dead letter for %s not written yet (%s); will retry", msg.id, exc)
            return False
        self.metrics.dead_lettered(msg.task)
        return True

    def undecodable(self, rec: Record, reason: str) -> None:
        topic = self.settings.tasks_topic
        self.log.warning("undecodable message at %s[%d]@%d: %s -> %s", topic, rec.partition,
                         rec.offset, reason, self.settings.dead_topic)
        envelope = {
            "reason": reason,
            "topic": topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "value_b64": base64.b64encode(rec.value or b"").decode(),
            "worker": self.worker_id,
            "at": time.time(),
        }
        try:
            self.producer.send_raw(self.settings.dead_topic, orjson.dumps(envelope), key=rec.key)
            self.metrics.dead_lettered("(undecodable)")
        except TaskqError as exc:
            self.log.error("could not dead-letter offset %d: %s", rec.offset, exc)
