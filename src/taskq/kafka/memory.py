"""An in-memory Kafka for unit tests: topics, one consumer group per group id, commits, pause.

It keeps the seam's semantics (per-partition order, assignment changes delivered inside
``poll()``, positions restart from the committed offset when a partition moves, paused partitions
return nothing, nothing fetched is lost) without a broker, so the worker's logic can be tested in
milliseconds. Every behaviour that matters is also tested against real Kafka with both clients.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import BrokerError
from ..models import TaskMessage
from ..settings import Settings
from .base import OnDelivery, PartitionListener, Record


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)
    generation: int = 0


class MemoryBroker:
    """Shared by every client of one test: the topics and the groups."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.topics: dict[str, list[list[Record]]] = {}
        self.groups: dict[str, _Group] = {}

    def create_topic(self, name: str, partitions: int) -> None:
        with self._lock:
            self.topics.setdefault(name, [[] for _ in range(partitions)])

    def produce(self, topic: str, value: bytes, key: bytes | None,
                headers: list[tuple[str, bytes]] | None = None) -> Record:
        with self._lock:
            parts = self.topics.get(topic)
            if parts is None:
                raise BrokerError(f"Kafka error while trying to produce to {topic}: UNKNOWN_TOPIC_OR_PART")
            p = zlib.crc32(key or value) % len(parts)
            rec = Record(p, len(parts[p]), key, value, list(headers) if headers else None)
            parts[p].append(rec)
            return rec

    def _join(self, group_id: str, member: MemoryConsumer) -> None:
        with self._lock:
            g = self.groups.setdefault(group_id, _Group())
            g.members.append(member)
            g.generation += 1

    def _leave(self, group_id: str, member: MemoryConsumer) -> None:
        with self._lock:
            g = self.groups[group_id]
            if member in g.members:
                g.members.remove(member)
                g.generation += 1

    def _target(self, group_id: str, topic: str, member: MemoryConsumer) -> set[int]:
        """Round-robin over members in join order (the assignor's outcome, not its algorithm)."""
        with self._lock:
            g = self.groups[group_id]
            n = len(self.topics.get(topic, []))
            i = g.members.index(member)
            return {p for p in range(n) if p % len(g.members) == i}


class MemoryProducer:
    enqueue_blocks = False

    def __init__(self, broker: MemoryBroker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self.closed = False

    def send(self, messages: Sequence[TaskMessage], *, topic: str | None = None,
             keys: Sequence[str | None] | None = None) -> None:
        for i, m in enumerate(messages):
            key = (keys[i] if keys else None) or m.id
            self.broker.produce(topic or self.settings.lane_topic(m.priority), m.to_bytes(), key.encode(), m.headers())

    def send_nowait(self, message: TaskMessage, *, key: str | None, on_delivery: OnDelivery) -> None:
        try:
            self.broker.produce(self.settings.lane_topic(message.priority), message.to_bytes(),
                                (key or message.id).encode(), message.headers())
        except BrokerError as exc:
            on_delivery(exc)
            return
        on_delivery(None)

    def send_raw(self, topic: str, value: bytes, *, key: bytes | None = None,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        self.broker.produce(topic, value, key, headers)

    def flush(self, timeout: float) -> None:
        """Every send is acknowledged at once."""

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


class MemoryConsumer:
    def __init__(self, broker: MemoryBroker, settings: Settings, listener: PartitionListener) -> None:
        self.broker = broker
        self.topic = settings.tasks_topic
        self.group_id = settings.group_id
        self.listener = listener
        self._assigned: set[int] = set()
        self._paused: set[int] = set()
        self._positions: dict[int, int] = {}
        self._generation = -1
        broker._join(self.group_id, self)

    def _rebalance(self) -> None:
        g = self.broker.groups[self.group_id]
        if g.generation == self._generation:
            return
        self._generation = g.generation
        target = self.broker._target(self.group_id, self.topic, self)
        gone, new = self._assigned - target, target - self._assigned
        if gone:
            self._assigned -= gone
            self._paused -= gone
            for p in gone:
                self._positions.pop(p, None)
            self.listener.on_revoked(gone, lost=False)
        if new:
            self._assigned |= new
            for p in new:
                self._positions[p] = g.committed.get(p, 0)
            self.listener.on_assigned(new)

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        with self.broker._lock:
            self._rebalance()
            out: list[Record] = []
            parts = self.broker.topics.get(self.topic, [])
            for p in sorted(self._assigned - self._paused):
                log = parts[p]
                take = log[self._positions[p]: self._positions[p] + max_records - len(out)]
                out.extend(take)
                self._positions[p] += len(take)
                if len(out) >= max_records:
                    break
            return out

    def assignment(self) -> set[int]:
        return set(self._assigned)

    def pause_all(self) -> None:
        self._paused |= self._assigned

    def resume_all(self) -> None:
        self._paused = set()

    def commit(self, positions: dict[int, int], *, sync: bool = False) -> None:
        with self.broker._lock:
            g = self.broker.groups[self.group_id]
            if g.generation != self._generation or not set(positions) <= self._assigned:
                raise BrokerError("Kafka error while trying to commit: REBALANCE_IN_PROGRESS")
            g.committed.update(positions)

    def maintain(self, *, paused: bool) -> None:
        """Nothing can stall in memory."""

    def close(self) -> None:
        self.broker._leave(self.group_id, self)


class MemoryAdmin:
    def __init__(self, broker: MemoryBroker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings

    def ensure_topics(self, *, timeout: float = 30.0) -> None:
        for topic in self.settings.lane_topics():
            self.broker.create_topic(topic, self.settings.partitions)
        self.broker.create_topic(self.settings.dead_topic, 1)

    def lag(self) -> dict[int, int]:
        with self.broker._lock:
            parts = self.broker.topics.get(self.settings.tasks_topic, [])
            g = self.broker.groups.get(self.settings.group_id, _Group())
            return {p: len(log) - g.committed.get(p, 0) for p, log in enumerate(parts)}

    def ping(self, *, timeout: float = 3.0) -> None:
        """Always there."""

    def close(self) -> None:
        """Nothing to release."""


class MemoryTransport:
    name = "memory"

    def __init__(self, settings: Settings, broker: MemoryBroker | None = None) -> None:
        self.settings = settings
        self.broker = broker or MemoryBroker()

    def producer(self, *, client_id: str = "taskq-producer") -> MemoryProducer:
        return MemoryProducer(self.broker, self.settings)

    def consumer(self, *, client_id: str, listener: PartitionListener, log_name: str | None = None) -> MemoryConsumer:
        return MemoryConsumer(self.broker, self.settings, listener)

    def admin(self, *, timeout: float = 10.0) -> MemoryAdmin:
        return MemoryAdmin(self.broker, self.settings)

    def read_tail(self, topic: str, limit: int, *, timeout: float = 10.0) -> list[Record]:
        with self.broker._lock:
            parts = self.broker.topics.get(topic, [])
            return [r for log in parts for r in log[-limit:]]

    def read_at(self, topic: str, partition: int, offset: int, *, timeout: float = 10.0) -> Record | None:
        with self.broker._lock:
            parts = self.broker.topics.get(topic, [])
            log = parts[partition] if 0 <= partition < len(parts) else []
            return log[offset] if 0 <= offset < len(log) else None
