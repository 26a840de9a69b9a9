"""The audit trail: who changed what, when, through the API.

Every action taken through the API (retry, cancel, purge, pause, quiet, schedule and workflow
changes, dead-letter replays, sign-ins, and submissions made by hand in the console) becomes an
entry in a capped Redis stream and a log line on ``taskq.audit``. An entry names the caller by role
and a token id (a short hash, never the token), how it signed in, from which address, and what it
did to which tasks or filter. Payloads are never recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import asdict, dataclass
from typing import Any, cast

from .errors import InvalidTask
from .events import is_stream_id
from .settings import Settings
from .store import Store, translate_errors

log = logging.getLogger("taskq.audit")
DETAIL_MAX = 500


def token_id(token: bytes, *, key: bytes) -> str:
    """A short, stable name for a token that reveals nothing of it: 8 hex digits of an HMAC keyed
    with the write token, so a reader of the trail (the read-only token, say) cannot test guesses
    of a token against its id offline."""
    return hmac.new(key, b"taskq-token-id\0" + token, hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action: who (``role``, ``token``, ``via``, ``ip``), what (``method``, ``path``, ``detail``),
    how it ended (``status``, the HTTP status) and when (``at``, epoch seconds)."""

    at: float
    role: str
    token: str
    via: str
    ip: str
    method: str
    path: str
    status: int
    detail: str = ""
    id: str = ""

    def line(self) -> str:
        who = f"{self.role} token {self.token}" if self.token else self.role
        what = f"{self.method} {_printable(self.path)} -> {self.status}"
        return f"{who} ({self.via}, {self.ip}): {what}" + (f": {_printable(self.detail)}" if self.detail else "")


def _printable(text: str) -> str:
    """Control characters escaped: a value from a request never forges a log line of its own."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class AuditLog:
    """The trail in Redis (``<prefix>audit``, capped at ``audit_maxlen``), newest first when read."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.maxlen = settings.audit_maxlen
        self.key = store.key("audit")

    def record(self, entry: AuditEntry) -> None:
        """Log the entry, then add it to Redis (``StoreUnavailable`` if Redis is down: the log line stays)."""
        log.info("audit: %s", entry.line())
        fields = {k: str(v) for k, v in asdict(entry).items() if k != "id"}
        fields["detail"] = fields["detail"][:DETAIL_MAX]
        with translate_errors():
            self.store.r.xadd(self.key, cast(Any, fields), maxlen=self.maxlen, approximate=True)

    def entries(self, *, limit: int = 100, before: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries, or those older than the id ``before`` (``InvalidTask`` if it
        is no stream id)."""
        if before is not None:
            if not is_stream_id(before):
                raise InvalidTask(f"before={before[:40]!r} is no audit entry id: expected '<ms>-<seq>' as listed")
            if before in ("0-0", "0"):
                return []  # nothing is older; Redis refuses the empty range
        with translate_errors():
            rows = cast(list[tuple[str, dict[str, str]]],
                        self.store.r.xrevrange(self.key, max=f"({before}" if before else "+", count=limit))
        return [_entry(entry_id, fields) for entry_id, fields in rows]


def _entry(entry_id: str, f: dict[str, str]) -> AuditEntry:
    def num(name: str, kind: type[float] | type[int]) -> Any:
        try:
            return kind(f.get(name, "0"))
        except ValueError:
            return kind(0)

    return AuditEntry(at=num("at", float), role=f.get("role", ""), token=f.get("token", ""), via=f.get("via", ""),
                      ip=f.get("ip", ""), method=f.get("method", ""), path=f.get("path", ""),
                      status=num("status", int), detail=f.get("detail", ""), id=entry_id)
