"""The Kafka seam: what taskq needs from a Kafka client, as typed protocols.

Everything above this package (the worker, the submitter, the API) talks to these protocols and
never imports a Kafka client library. Each adapter (``kafka_python``, ``confluent``, ``memory``)
translates its library's exceptions to ``BrokerError``/``BrokerUnavailable`` and hides its
library's workarounds behind the same semantics:

- a consumer is used from one thread; partition assignment changes reach the listener while that
  thread is inside ``poll()`` (or, for kafka-python, from its IO thread during a poll: the worker's
  handlers take their own lock either way);
- offsets are committed explicitly, as positions (the next offset to read) per partition;
- the producer is thread-safe, idempotent and waits for ``acks=all``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import BrokerUnavailable
from ..models import TaskMessage


class Refusals:
    """The last time Kafka refused this client's credentials or TLS, so a timeout can say why.

    Both clients meet a wrong password, an unknown user or an untrusted certificate the same way:
    a log line, a reconnect, and in the end a timeout that says only "Kafka did not answer". An
    adapter notes what its library reported here and adds it to the ``BrokerUnavailable`` it raises."""

    MARKERS = ("saslauthenticationfailed", "sasl authentication error", "authentication failed",
               "ssl handshake failed", "certificate verify failed", "unsupportedsaslmechanism",
               "illegalsaslstate")

    # A refusal older than this explains nothing: a later timeout is more likely a plain outage.
    FRESH_SECONDS = 120.0

    def __init__(self) -> None:
        self.last: str | None = None
        self._at = 0.0

    def note(self, text: str) -> None:
        if any(marker in text.lower() for marker in self.MARKERS):
            self.refused(text)

    def refused(self, text: str) -> None:
        self.last = " ".join(text.split())[:300]
        self._at = time.monotonic()

    def explain(self, exc: Exception) -> Exception:
        """``exc`` with the last refusal added when it is a ``BrokerUnavailable`` (a timeout) and the
        refusal is recent."""
        if (self.last is None or not isinstance(exc, BrokerUnavailable)
                or time.monotonic() - self._at > self.FRESH_SECONDS):
            return exc
        out = BrokerUnavailable(f"{exc} (Kafka refused this client: {self.last}; check TASKQ_KAFKA_SASL_* and "
                                f"TASKQ_KAFKA_SSL_CAFILE)")
        out.__cause__ = exc.__cause__
        return out


# Called once per message handed to ``send_nowait``: None on Kafka's acknowledgement, else why not.
OnDelivery = Callable[[Exception | None], None]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message of the tasks topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    # The message's Kafka headers (a task's ``traceparent``); None when it has none.
    headers: list[tuple[str, bytes]] | None = None
    timestamp: float | None = None  # when it was produced (epoch seconds), where the reader asks for it


class PartitionListener(Protocol):
    def on_assigned(self, partitions: set[int]) -> None: ...

    def on_revoked(self, partitions: set[int], *, lost: bool) -> None: ...


class Consumer(Protocol):
    """The worker's group member on the tasks topic (manual commits, cooperative assignment)."""

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        """Up to ``max_records`` records, in offset order within each partition."""
        ...

    def assignment(self) -> set[int]: ...

    def pause_all(self) -> None:
        """Pause every assigned partition; nothing fetched meanwhile is lost or skipped."""
        ...

    def resume_all(self) -> None: ...

    def commit(self, positions: dict[int, int], *, sync: bool = False) -> None:
        """Commit ``partition -> next offset to read``; raises ``BrokerError`` (e.g. mid-rebalance)."""
        ...

    def maintain(self, *, paused: bool) -> None:
        """Periodic self-checks from the consumer's thread (a client's known stalls); cheap."""
        ...

    def close(self) -> None:
        """Leave the group without committing."""
        ...


class Producer(Protocol):
    # Whether send_nowait can block its caller (kafka-python waits for metadata and buffer room, up
    # to the submit timeout when Kafka is away); an event loop then calls it from a thread.
    enqueue_blocks: bool

    def send(self, messages: Sequence[TaskMessage], *, topic: str | None = None,
             keys: Sequence[str | None] | None = None) -> None:
        """Produce all messages (with their ``headers()``); return once Kafka acknowledged every one."""
        ...

    def send_nowait(self, message: TaskMessage, *, key: str | None, on_delivery: OnDelivery) -> None:
        """Hand one message over; ``on_delivery`` runs on the client's thread when Kafka answered."""
        ...

    def send_raw(self, topic: str, value: bytes, *, key: bytes | None = None,
                 headers: list[tuple[str, bytes]] | None = None) -> None: ...

    def flush(self, timeout: float) -> None: ...

    def close(self, timeout: float = 5.0) -> None: ...


class Admin(Protocol):
    """Topic setup and group inspection. Thread-safe; reuse one instead of connecting per call."""

    def ensure_topics(self, *, timeout: float = 30.0) -> None:
        """Create the task and dead-letter topics if they do not exist yet."""
        ...

    def lag(self) -> dict[int, int]:
        """Per-partition lag (end offset - committed offset) of the worker group on the tasks topic."""
        ...

    def ping(self, *, timeout: float = 3.0) -> None:
        """Raise ``BrokerUnavailable`` unless Kafka answers a metadata request."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    """One Kafka client library, configured from the settings."""

    name: str

    def producer(self, *, client_id: str = "taskq-producer") -> Producer: ...

    def consumer(self, *, client_id: str, listener: PartitionListener, log_name: str | None = None) -> Consumer:
        """``log_name`` prefixes the adapter's own log lines (the worker's id); default ``client_id``."""
        ...

    def admin(self, *, timeout: float = 10.0) -> Admin: ...

    def read_tail(self, topic: str, limit: int, *, timeout: float = 10.0) -> list[Record]:
        """Up to ``limit`` of the newest records of each partition of ``topic`` (no group, nothing
        committed): the dead letters an operator looks at. Raises ``BrokerError``."""
        ...

    def read_at(self, topic: str, partition: int, offset: int, *, timeout: float = 10.0) -> Record | None:
        """The one record at ``partition``/``offset``, or None when there is none (any more)."""
        ...
