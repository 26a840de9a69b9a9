"""The dead-letter topic as operators read it: what is there, why, and a way back.

Two kinds of letter are written there (``worker/outcomes.py``): a *task* that ended dead (retries
exhausted, or its runs kept losing their worker), with its id, name, arguments and error; and a
*message* that could never run (undecodable, or impossible to start), with its raw bytes. Each is
named by its place in the topic, ``partition:offset``. Replaying one submits a new task: the
letter's own task and arguments, or corrected ones.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import DeadLetterNotFound
from .kafka import Record, Transport
from .settings import Settings

PREVIEW_CHARS = 200
LIST_MAX = 500


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    kind: str  # "task" (it ran and ended dead) | "message" (it could never run) | "unreadable" (not a letter)
    reason: str
    at: float | None
    task: str | None = None
    task_id: str | None = None
    error: str | None = None
    worker: str | None = None
    source: str | None = None  # a message's topic[partition]@offset on the tasks topic
    size: int = 0  # bytes of the original message (a message) or of the letter (a task)
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    body: dict[str, Any] = field(default_factory=dict)  # the letter as written, raw bytes left out
    raw: bytes = b""  # the message as it arrived (a message), or the letter itself (otherwise)

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def preview(self) -> str:
        """The first characters of what arrived (a message) or of the arguments (a task)."""
        if self.kind == "task":
            text = self.body.get("arguments_preview") or orjson.dumps([self.args, self.kwargs]).decode()
        else:
            text = self.raw[:PREVIEW_CHARS * 4].decode("utf-8", errors="backslashreplace")
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"

    def to_dict(self) -> dict[str, Any]:
        """As the HTTP API and ``taskq dead --json`` show it."""
        return {"partition": self.partition, "offset": self.offset, "position": self.position, "kind": self.kind,
                "reason": self.reason, "at": self.at, "task": self.task, "task_id": self.task_id,
                "error": self.error, "worker": self.worker, "source": self.source, "size": self.size,
                "args": self.args, "kwargs": self.kwargs, "preview": self.preview,
                "cut": self.body.get("cut")}


def parse_position(text: str) -> tuple[int, int]:
    """``3:1042`` -> (3, 1042); ValueError saying what is expected."""
    part, sep, off = text.partition(":")
    if not sep or not part.isdigit() or not off.isdigit():
        raise ValueError(f"{text!r} is not a dead letter's position: use PARTITION:OFFSET, e.g. 0:17")
    return int(part), int(off)


def letter(rec: Record) -> DeadLetter:
    """A dead-letter record as a DeadLetter; one that is not a letter of ours reads as 'unreadable'."""
    raw = rec.value or b""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return DeadLetter(rec.partition, rec.offset, "unreadable", "not a taskq dead letter", rec.timestamp,
                          size=len(raw), raw=raw)
    at = body.get("at") if isinstance(body.get("at"), (int, float)) else rec.timestamp
    reason = str(body.get("reason") or "?")
    if "value_b64" in body:
        original = b""
        with contextlib.suppress(ValueError, TypeError):
            original = base64.b64decode(body.get("value_b64") or "")
        shown = {k: v for k, v in body.items() if k != "value_b64"}
        source = f"{body.get('topic')}[{body.get('partition')}]@{body.get('offset')}"
        return DeadLetter(rec.partition, rec.offset, "message", reason, at, worker=_str(body.get("worker")),
                          source=source, size=int(body.get("value_bytes") or len(original)), body=shown, raw=original)
    args, kwargs = body.get("args"), body.get("kwargs")
    return DeadLetter(rec.partition, rec.offset, "task", reason, at, task=_str(body.get("task")),
                      task_id=_str(body.get("id")), error=_str(body.get("error")), worker=_str(body.get("worker")),
                      size=len(raw), args=args if isinstance(args, list) else None,
                      kwargs=kwargs if isinstance(kwargs, dict) else None, body=body, raw=raw)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def newest(transport: Transport, settings: Settings, *, limit: int = 50) -> list[DeadLetter]:
    """The newest ``limit`` dead letters, newest first."""
    limit = max(1, min(limit, LIST_MAX))
    letters = [letter(r) for r in transport.read_tail(settings.dead_topic, limit)]
    letters.sort(key=lambda d: (d.at or 0.0, d.offset), reverse=True)
    return letters[:limit]


def one(transport: Transport, settings: Settings, partition: int, offset: int) -> DeadLetter:
    rec = transport.read_at(settings.dead_topic, partition, offset)
    if rec is None:
        raise DeadLetterNotFound(partition, offset)
    return letter(rec)
