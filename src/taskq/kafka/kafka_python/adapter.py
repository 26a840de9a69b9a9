"""kafka-python behind the seam of ``taskq.kafka.base``.

kafka-python exceptions are translated to ``BrokerError``/``BrokerUnavailable`` here, and its
known stalls are handled here (``flow``, ``join_guard``), so nothing above sees the library.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import kafka.errors as kerr
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.producer.transaction_manager import TransactionState
from kafka.structs import OffsetAndMetadata

from ...errors import BrokerError, BrokerUnavailable
from ...logs import named
from ...models import TaskMessage
from ...settings import Settings
from ..base import OnDelivery, PartitionListener, Record, Refusals
from .flow import StallWatch, pause_all, resume_all
from .join_guard import JoinGuard

log = logging.getLogger("taskq.kafka")


@contextmanager
def translate_errors(what: str, refusals: Refusals | None = None) -> Iterator[None]:
    try:
        yield
    except kerr.KafkaTimeoutError as exc:
        out: Exception = BrokerUnavailable(f"Kafka did not answer while trying to {what}: {exc}")
        raise (refusals.explain(out) if refusals else out) from exc
    except (kerr.KafkaConnectionError, kerr.NodeNotReadyError) as exc:
        out = BrokerUnavailable(f"Kafka is unreachable while trying to {what}: {exc}")
        raise (refusals.explain(out) if refusals else out) from exc
    except kerr.KafkaError as exc:
        raise BrokerError(f"Kafka error while trying to {what}: {exc}") from exc


def translated(exc: Exception, what: str, refusals: Refusals | None = None) -> Exception:
    """``exc`` as ``translate_errors`` would raise it (for errors delivered to a callback)."""
    try:
        with translate_errors(what, refusals):
            raise exc
    except Exception as out:  # noqa: BLE001 - the translation is the point
        return out
    raise AssertionError("unreachable")


class RefusalWatch(logging.Handler):
    """Notes the refusals kafka-python logs (it raises only a timeout) while an adapter is open."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.refusals = Refusals()
        logging.getLogger("kafka").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.refusals.note(record.getMessage())

    def stop(self) -> None:
        logging.getLogger("kafka").removeHandler(self)


class Admin:
    """One kafka-python admin client, reused; its calls are serialised (it is not thread-safe)."""

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self._timeout = timeout
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._watch = RefusalWatch()

    def _client(self) -> KafkaAdminClient:
        if self._admin is None:
            with translate_errors("connect the admin client", self._watch.refusals):
                self._admin = KafkaAdminClient(
                    **self.settings.kafka_common(), client_id="taskq-admin",
                    request_timeout_ms=int(self._timeout * 1000), bootstrap_timeout_ms=int(self._timeout * 1000),
                )
        return self._admin

    def _reset(self) -> None:
        # A client whose connection broke is rebuilt on the next call rather than trusted again.
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def ensure_topics(self, *, timeout: float = 30.0) -> None:
        s = self.settings
        with self._lock:
            try:
                with translate_errors("create topics", self._watch.refusals):
                    admin = self._client()
                    existing = set(admin.list_topics())
                    wanted = {**{t: s.partitions for t in s.lane_topics()}, s.dead_topic: 1}
                    missing = {
                        name: {"num_partitions": parts, "replication_factor": s.replication_factor}
                        for name, parts in wanted.items() if name not in existing
                    }
                    if missing:
                        with contextlib.suppress(kerr.TopicAlreadyExistsError):  # another process won the race
                            admin.create_topics(missing, timeout_ms=int(timeout * 1000), wait_for_metadata=True)
                        log.info("created topics %s", ", ".join(sorted(missing)))
            except BrokerError:
                self._reset()
                raise

    def lag(self) -> dict[int, int]:
        s = self.settings
        with self._lock:
            try:
                with translate_errors("read consumer lag", self._watch.refusals):
                    admin = self._client()
                    parts = [TopicPartition(s.tasks_topic, p) for p in range(s.partitions)]
                    committed = admin.list_group_offsets({s.group_id: parts}).get(s.group_id, {})
                    ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in parts})
            except BrokerError:
                self._reset()
                raise
        lag: dict[int, int] = {}
        for tp in parts:
            end = ends[tp].offset if tp in ends else 0
            c = committed.get(tp)
            pos = c.offset if c is not None and c.offset >= 0 else 0
            lag[tp.partition] = max(0, end - pos)
        return lag

    def ping(self, *, timeout: float = 3.0) -> None:
        with self._lock:
            try:
                with translate_errors("list topics", self._watch.refusals):
                    self._client().list_topics()
            except BrokerError:
                self._reset()
                raise

    def close(self) -> None:
        with self._lock:
            self._reset()
        self._watch.stop()


class Producer:
    """Produces task messages and waits for Kafka's acknowledgement (acks=all, idempotent).

    kafka-python 3 can leave an idempotent producer unable to send for good; the producer is
    rebuilt when that happens (``_stuck``), so one bad moment does not take the submitter down:

    - a permanent fatal state after a non-retriable error, such as a message larger than the
      topic allows;
    - no producer id: after a batch it had sent expired (the broker was restarted, say), 3.0.12
      resets the producer id but stays READY, and it asks for a new id only from UNINITIALIZED.
      Every later send waited for an id that never came: after one 8 s Kafka restart an API
      refused every submit until it was restarted (found by the chaos test, reproduced alone).
    """

    enqueue_blocks = True

    def __init__(self, settings: Settings, *, client_id: str = "taskq-producer") -> None:
        self.settings = settings
        self.client_id = client_id
        self._lock = threading.Lock()
        self._watch = RefusalWatch()
        try:
            self._p = self._connect()
        except BaseException:
            self._watch.stop()
            raise

    def _connect(self) -> KafkaProducer:
        s = self.settings
        with translate_errors("connect the producer", self._watch.refusals):
            return KafkaProducer(
                **s.kafka_common(),
                client_id=self.client_id,
                acks="all",
                enable_idempotence=True,
                # Its own sensors cost ~9% of the sender thread per request; taskq exports its own metrics.
                metrics_enabled=False,
                # linger 1-2 ms saved ~10% CPU at 500 tasks/s but did not move the p99 (noise dominates).
                linger_ms=0,
                batch_size=256 * 1024,
                max_block_ms=int(s.submit_timeout * 1000),
                request_timeout_ms=int(s.submit_timeout * 1000),
                delivery_timeout_ms=int(s.submit_timeout * 1000) + 1000,
                bootstrap_timeout_ms=int(s.submit_timeout * 1000),
            )

    @staticmethod
    def _stuck(p: KafkaProducer) -> str | None:
        """Why this producer can never send again, or None."""
        tm = getattr(p, "_transaction_manager", None)
        if tm is None:
            return None
        if tm.has_fatal_error():
            return "hit a fatal error"
        if (not tm.has_producer_id() and not tm.is_transactional()
                and getattr(tm, "_current_state", None) is TransactionState.READY):
            return "lost its producer id and does not ask for a new one"
        return None

    def _live(self) -> KafkaProducer:
        if self._stuck(self._p) is not None:
            with self._lock:
                why = self._stuck(self._p)
                if why is not None:
                    log.warning("the Kafka producer %s; starting a new one", why)
                    old, self._p = self._p, self._connect()
                    _close(old, timeout=0)
        return self._p

    def send(self, messages: Sequence[TaskMessage], *, topic: str | None = None,
             keys: Sequence[str | None] | None = None) -> None:
        """Produce all messages; return only once Kafka acknowledged every one of them."""
        with translate_errors(f"produce to {topic or self.settings.tasks_topic}", self._watch.refusals):
            p = self._live()
            futures = [
                # Each message to its priority lane's topic unless a topic is given.
                p.send(topic or self.settings.lane_topic(m.priority), value=m.to_bytes(),
                       key=((keys[i] if keys else None) or m.id).encode(), headers=m.headers())
                for i, m in enumerate(messages)
            ]
            p.flush(timeout=self.settings.submit_timeout)
            for f in futures:
                f.get(timeout=self.settings.submit_timeout)

    def send_nowait(self, message: TaskMessage, *, key: str | None, on_delivery: OnDelivery) -> None:
        """Hand one message to the producer; ``on_delivery`` runs on kafka-python's IO thread."""
        with translate_errors(f"produce to {self.settings.tasks_topic}", self._watch.refusals):
            fut = self._live().send(self.settings.lane_topic(message.priority), value=message.to_bytes(),
                                    key=(key or message.id).encode(), headers=message.headers())
        what = f"produce to {self.settings.lane_topic(message.priority)}"
        fut.add_callback(lambda _md: on_delivery(None))
        fut.add_errback(lambda exc: on_delivery(translated(exc, what, self._watch.refusals)))

    def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with translate_errors("flush the producer", self._watch.refusals):
            while True:
                try:
                    self._p.flush(timeout=max(0.0, deadline - time.monotonic()))
                    return
                except kerr.UnknownError as exc:
                    # kafka-python 3.0 raises 'Future not done' when a batch it split after
                    # MESSAGE_TOO_LARGE (the broker refusing one of its messages) is waited for before
                    # its parts ended: their outcomes come through the delivery callbacks, so wait on.
                    if "Future not done" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)

    def send_raw(self, topic: str, value: bytes, *, key: bytes | None = None,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        with translate_errors(f"produce to {topic}", self._watch.refusals):
            self._live().send(topic, value=value, key=key, headers=headers).get(timeout=self.settings.submit_timeout)

    def close(self, timeout: float = 5.0) -> None:
        try:
            _close(self._p, timeout=timeout)
        finally:
            self._watch.stop()


def _close(p: KafkaProducer, *, timeout: float) -> None:
    """Close a producer even when its messages cannot be delivered (they fail, nothing hangs).

    kafka-python's ``close()`` first flushes and raises if that times out, before it stops its
    sender thread: a producer whose broker is gone (or that can no longer send) stayed half-open,
    its thread running, and tried again from ``__del__``.
    """
    try:
        p.close(timeout=timeout)
    except kerr.KafkaError:
        log.debug("producer close timed out; dropping its undelivered messages", exc_info=True)
        sender = getattr(p, "_sender", None)
        if sender is not None:
            sender.force_close()  # fails what is still queued, stops the thread
            # The failure reports run on that thread: once it ends, every message has had its report.
            sender.join(timeout=2.0)
        if hasattr(p, "_closed"):
            p._closed = True


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    def __init__(self, listener: PartitionListener) -> None:
        self.listener = listener

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.listener.on_revoked({tp.partition for tp in revoked}, lost=False)

    def on_partitions_lost(self, lost: Any) -> None:
        self.listener.on_revoked({tp.partition for tp in lost}, lost=True)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.listener.on_assigned({tp.partition for tp in assigned})


class Consumer:
    """The worker's group consumer: manual commits, cooperative-sticky, short session.

    Besides the library it carries the guards against kafka-python's stalls: a group join that
    completes unseen (``JoinGuard``) and partitions that stop being fetched (``flow``).
    """

    def __init__(self, settings: Settings, *, client_id: str, listener: PartitionListener,
                 log_name: str | None = None) -> None:
        self.settings = settings
        self.topic = settings.tasks_topic
        # The guards' warnings carry the worker's id, like every other worker log line.
        self._log = named(logging.getLogger("taskq.worker"), log_name or client_id)
        self._join_guard = JoinGuard(log=self._log)
        self._stall_watch = StallWatch(log=self._log)
        session_ms = int(settings.session_timeout * 1000)
        with translate_errors("connect the consumer"):
            self._c = KafkaConsumer(
                **settings.kafka_common(),
                client_id=client_id,
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                partition_assignment_strategy=[CooperativeStickyAssignor],
                session_timeout_ms=session_ms,
                heartbeat_interval_ms=max(100, session_ms // 5),
                max_poll_interval_ms=300_000,
                # kafka-python leaves a partition whose fetched records are not yet drained out of the next
                # fetch; if the others are empty that fetch waits this long while new tasks queue on that
                # partition. 100 ms gave a fixed ~90 ms p99 in the head-of-line benchmark; 25 ms: 16 ms.
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                metrics_enabled=False,
                # Full fetch requests (every partition, every time) instead of KIP-227 incremental sessions.
                # Defensive: in a session kafka-python re-sends a partition only when its fetch offset
                # changed, and the broker returns it only when it has something new, so records fetched but
                # discarded before reaching us (a seek back to the same offset, a partition moving) would
                # not be asked for again until more arrive. A dozen partitions per request cost next to nothing.
                enable_incremental_fetch_sessions=False,
                max_poll_records=500,
                allow_auto_create_topics=False,
                # A metadata change (a topic's partitions becoming known) triggers a rejoin; the default
                # 5 minutes is how long a join that saw no partitions would otherwise stay empty.
                metadata_max_age_ms=30_000,
            )
            self._await_partitions()
            self._c.subscribe([self.topic], listener=_Listener(listener))

    def _await_partitions(self, timeout: float = 10.0) -> None:
        """Join only once this client's metadata lists the topic's partitions.

        A topic created a moment ago (ensure_topics) can be missing from the first metadata answer;
        the group leader's assignor then hands out nothing ("No partition metadata for topic"), and
        the members sat idle until the next metadata refresh (seen: >30 s on a loaded machine)."""
        deadline = time.monotonic() + timeout
        while not self._c.partitions_for_topic(self.topic) and time.monotonic() < deadline:
            time.sleep(0.1)

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        with translate_errors("poll"):
            batch = self._c.poll(timeout_ms=self._join_guard.poll_timeout(self._c, timeout_ms),
                                 max_records=max_records)
        # kafka-python gives every record a list of headers, empty when it has none.
        return [Record(tp.partition, r.offset, r.key, r.value, r.headers or None)
                for tp, records in batch.items() for r in records]

    def assignment(self) -> set[int]:
        with translate_errors("read the assignment"):
            return {tp.partition for tp in self._c.assignment()}

    def pause_all(self) -> None:
        with translate_errors("pause"):
            pause_all(self._c)

    def resume_all(self) -> None:
        with translate_errors("resume"):
            resume_all(self._c)

    def commit(self, positions: dict[int, int], *, sync: bool = False) -> None:
        offsets = {TopicPartition(self.topic, p): OffsetAndMetadata(pos, "", -1) for p, pos in positions.items()}
        with translate_errors("commit"):
            if sync:
                self._c.commit(offsets)
            else:
                self._c.commit_async(offsets)

    def maintain(self, *, paused: bool) -> None:
        self._join_guard.check(self._c)
        self._stall_watch.check(self._c, paused=paused, rebalancing=self._join_guard.rebalancing(self._c))

    def close(self) -> None:
        try:
            self._c.close(autocommit=False, timeout_ms=5000)
        except kerr.KafkaError:
            log.debug("consumer close failed", exc_info=True)


class KafkaPythonTransport:
    name = "kafka-python"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def producer(self, *, client_id: str = "taskq-producer") -> Producer:
        return Producer(self.settings, client_id=client_id)

    def consumer(self, *, client_id: str, listener: PartitionListener, log_name: str | None = None) -> Consumer:
        return Consumer(self.settings, client_id=client_id, listener=listener, log_name=log_name)

    def admin(self, *, timeout: float = 10.0) -> Admin:
        return Admin(self.settings, timeout=timeout)

    def _reader(self, timeout: float) -> KafkaConsumer:
        with translate_errors("connect a reader"):
            return KafkaConsumer(**self.settings.kafka_common(), group_id=None, enable_auto_commit=False,
                                 client_id="taskq-reader", request_timeout_ms=int(timeout * 1000) + 1000)

    def read_tail(self, topic: str, limit: int, *, timeout: float = 10.0) -> list[Record]:
        c = self._reader(timeout)
        try:
            with translate_errors(f"read {topic}"):
                parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
                if not parts:
                    return []
                begin, end = c.beginning_offsets(parts), c.end_offsets(parts)
                c.assign(parts)
                for tp in parts:
                    c.seek(tp, max(begin[tp], end[tp] - limit))
                return _read_until(c, {tp: end[tp] for tp in parts if end[tp] > begin[tp]}, timeout)
        finally:
            c.close()

    def read_at(self, topic: str, partition: int, offset: int, *, timeout: float = 10.0) -> Record | None:
        c = self._reader(timeout)
        try:
            with translate_errors(f"read {topic}"):
                tp = TopicPartition(topic, partition)
                if partition not in (c.partitions_for_topic(topic) or ()):
                    return None
                begin, end = c.beginning_offsets([tp])[tp], c.end_offsets([tp])[tp]
                if not begin <= offset < end:
                    return None
                c.assign([tp])
                c.seek(tp, offset)
                found = [r for r in _read_until(c, {tp: offset + 1}, timeout) if r.offset == offset]
                return found[0] if found else None
        finally:
            c.close()


def _read_until(c: KafkaConsumer, ends: dict[TopicPartition, int], timeout: float) -> list[Record]:
    """Poll ``c`` until each partition's position reaches its end offset (or the timeout)."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while ends and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=200).values():
            out += [Record(r.partition, r.offset, r.key, r.value, list(r.headers or []) or None,
                           r.timestamp / 1000 if r.timestamp and r.timestamp > 0 else None) for r in recs]
        ends = {tp: end for tp, end in ends.items() if c.position(tp) < end}
    if ends:
        raise BrokerUnavailable(f"reading {next(iter(ends)).topic} did not finish within {timeout:g}s")
    return out
