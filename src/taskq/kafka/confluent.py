"""confluent-kafka (librdkafka) behind the seam of ``taskq.kafka.base``.

librdkafka differs from kafka-python in ways this adapter absorbs:

- ``pause()`` drops what was pre-fetched and ``resume()`` fetches again from the last record
  handed to us + 1, so nothing stays parked (kafka-python's stall, see ``kafka_python.flow``,
  cannot happen), but every pause costs a fetch round trip. A worker at full speed fills its
  window and frees a slot hundreds of times a second, so ``pause_all`` first only stops handing
  records out; partitions are paused in librdkafka when the pause lasts (``SOFT_PAUSE_SECONDS``).
  librdkafka has no "paused" query, so the adapter keeps the paused set;
- rebalance callbacks run inside ``consume()`` on the consumer's own thread; with cooperative or
  KIP-848 assignment the binding applies the incremental (un)assignment after the callback;
- delivery reports run inside ``poll()``/``flush()``: a producer thread polls, so acks reach
  waiting submitters without any of them polling for the others.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from ..errors import BrokerError, BrokerUnavailable
from ..models import TaskMessage
from ..settings import Settings
from .base import OnDelivery, PartitionListener, Record, Refusals
from .progress import FetchWatch, PartitionProbe

log = logging.getLogger("taskq.kafka")

# librdkafka error codes that mean "Kafka is not there (yet)" rather than "Kafka said no".
_UNAVAILABLE = {
    ck.KafkaError._TRANSPORT, ck.KafkaError._ALL_BROKERS_DOWN, ck.KafkaError._MSG_TIMED_OUT,
    ck.KafkaError._TIMED_OUT, ck.KafkaError._TIMED_OUT_QUEUE, ck.KafkaError.REQUEST_TIMED_OUT,
    ck.KafkaError._RESOLVE, ck.KafkaError.NOT_COORDINATOR, ck.KafkaError.COORDINATOR_NOT_AVAILABLE,
    ck.KafkaError.LEADER_NOT_AVAILABLE, ck.KafkaError.NOT_LEADER_FOR_PARTITION,
}
# How often the producer thread serves delivery reports when nothing else wakes it.
PRODUCER_POLL_SECONDS = 0.05
# A pause shorter than this never reaches librdkafka (whose pause drops and re-fetches the buffer).
SOFT_PAUSE_SECONDS = 0.5


def _error(err: ck.KafkaError, what: str, refusals: Refusals | None = None) -> BrokerError:
    text = f"{err.name()}: {err.str()}"
    if err.code() in _UNAVAILABLE:
        out = BrokerUnavailable(f"Kafka is unreachable or did not answer while trying to {what}: {text}")
        return cast(BrokerError, refusals.explain(out)) if refusals else out
    return BrokerError(f"Kafka error while trying to {what}: {text}")


def _note_refusal(refusals: Refusals, err: ck.KafkaError) -> None:
    """librdkafka's error callback: a refused login or TLS handshake, kept for the timeout it causes."""
    if err.code() in (ck.KafkaError._AUTHENTICATION, ck.KafkaError._SSL):
        refusals.refused(err.str())


@contextmanager
def translate_errors(what: str, refusals: Refusals | None = None) -> Iterator[None]:
    try:
        yield
    except ck.KafkaException as exc:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], ck.KafkaError) else None
        if err is None:
            raise BrokerError(f"Kafka error while trying to {what}: {exc}") from exc
        raise _error(err, what, refusals) from exc
    except BufferError as exc:
        raise BrokerUnavailable(f"the producer queue is full while trying to {what}: {exc}") from exc
    except TimeoutError as exc:  # an admin future's result(timeout=...) that Kafka did not answer in time
        raise BrokerUnavailable(f"Kafka did not answer in time while trying to {what}") from exc


class LibrdkafkaLog:
    """librdkafka's own log lines, one level lower, into Python logging (``kafka.librdkafka``).

    librdkafka logs every refused connection as an error ("FAIL ... Connection refused"), while
    taskq reports what that costs itself, once, through its own errors (``BrokerUnavailable``: the
    CLI's one line). So its errors arrive as warnings: hidden at the default TASKQ_KAFKA_LOG_LEVEL
    (ERROR), shown when asked for, as kafka-python's connection warnings are."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def log(self, level: int, msg: str, *args: Any) -> None:
        self.logger.log(min(level, logging.WARNING), msg, *args)


def common_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    """librdkafka connection options from taskq's settings."""
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(settings.kafka_servers),
        "security.protocol": settings.kafka_security_protocol,
        "client.id": client_id,
        # librdkafka logs to stderr by default; route it to Python logging at the chosen level.
        "logger": LibrdkafkaLog(logging.getLogger("kafka.librdkafka")),
        # Requests are small and answered one by one: Nagle's algorithm would only delay them.
        "socket.nagle.disable": True,
    }
    if settings.kafka_sasl_mechanism:
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
        conf["sasl.username"] = settings.kafka_sasl_username or ""
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    if settings.kafka_ssl_cafile:
        conf["ssl.ca.location"] = settings.kafka_ssl_cafile
    return conf


class Producer:
    """Idempotent ``acks=all`` producer; a thread serves its delivery reports."""

    enqueue_blocks = False  # produce() only queues (a full queue waits at most 1 s, see _produce)

    def __init__(self, settings: Settings, *, client_id: str = "taskq-producer") -> None:
        self.settings = settings
        self.client_id = client_id
        self._lock = threading.Lock()
        self._fatal: str | None = None
        self._refusals = Refusals()
        self._p = self._connect()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{client_id}-acks", daemon=True)
        self._thread.start()

    def _connect(self) -> ck.Producer:
        s = self.settings
        conf = common_config(s, client_id=self.client_id)
        conf.update({
            "acks": "all",
            "enable.idempotence": True,
            # The Java client's (and kafka-python's) murmur2 hash: a key lands on the same partition
            # whichever client produced it, so per-key order holds across a mixed fleet.
            "partitioner": "murmur2_random",
            # 0: a lone submit leaves at once; concurrent submits still share requests, because
            # librdkafka batches whatever queued while the previous request was in flight.
            "linger.ms": 0,
            "message.timeout.ms": int(s.submit_timeout * 1000),
            "socket.connection.setup.timeout.ms": max(1000, int(s.submit_timeout * 1000)),
            "error_cb": self._on_error,
        })
        with translate_errors("connect the producer"):
            return ck.Producer(conf)

    def _on_error(self, err: ck.KafkaError) -> None:
        _note_refusal(self._refusals, err)
        # An idempotent producer's fatal error (e.g. its sequence numbers were lost) ends it for good.
        if err.fatal():
            self._fatal = f"{err.name()}: {err.str()}"

    def _serve(self) -> None:
        while not self._closing.is_set():
            self._p.poll(PRODUCER_POLL_SECONDS)

    def _live(self) -> ck.Producer:
        if self._fatal is not None:
            with self._lock:
                if self._fatal is not None:
                    log.warning("the Kafka producer hit a fatal error (%s); starting a new one", self._fatal)
                    old, self._p, self._fatal = self._p, self._connect(), None
                    old.purge()
                    old.flush(0)
        return self._p

    def _produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: OnDelivery,
                 headers: Sequence[tuple[str, bytes]] | None = None) -> None:
        hdrs: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None

        def report(err: ck.KafkaError | None, _msg: ck.Message) -> None:
            on_delivery(None if err is None else _error(err, f"produce to {topic}", self._refusals))

        p = self._live()
        with translate_errors(f"produce to {topic}"):
            try:
                p.produce(topic, value=value, key=key, headers=hdrs, on_delivery=report)
            except BufferError:
                # The local queue is full (a burst far past what Kafka takes): wait for room once.
                p.poll(min(1.0, self.settings.submit_timeout))
                p.produce(topic, value=value, key=key, headers=hdrs, on_delivery=report)

    def send(self, messages: Sequence[TaskMessage], *, topic: str | None = None,
             keys: Sequence[str | None] | None = None) -> None:
        done = threading.Event()
        lock = threading.Lock()
        left = [len(messages)]
        errors: list[Exception] = []

        def on_delivery(err: Exception | None) -> None:
            with lock:
                if err is not None:
                    errors.append(err)
                left[0] -= 1
                if left[0] == 0:
                    done.set()

        if not messages:
            return
        for i, m in enumerate(messages):
            # Each message to its priority lane's topic unless a topic is given.
            key = ((keys[i] if keys else None) or m.id).encode()
            self._produce(topic or self.settings.lane_topic(m.priority), m.to_bytes(), key, on_delivery, m.headers())
        # message.timeout.ms bounds every report, so this wait ends; the margin covers scheduling.
        if not done.wait(self.settings.submit_timeout + 2.0):
            raise self._refusals.explain(BrokerUnavailable(
                f"Kafka did not acknowledge {left[0]} message(s) to {topic or 'the tasks topic'} "
                f"within {self.settings.submit_timeout:g}s"))
        if errors:
            raise errors[0]

    def send_nowait(self, message: TaskMessage, *, key: str | None, on_delivery: OnDelivery) -> None:
        self._produce(self.settings.lane_topic(message.priority), message.to_bytes(), (key or message.id).encode(),
                      on_delivery,
                      message.headers())

    def send_raw(self, topic: str, value: bytes, *, key: bytes | None = None,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        done = threading.Event()
        result: list[Exception | None] = []

        def on_delivery(err: Exception | None) -> None:
            result.append(err)
            done.set()

        self._produce(topic, value, key, on_delivery, headers)
        if not done.wait(self.settings.submit_timeout + 2.0):
            raise BrokerUnavailable(f"Kafka did not acknowledge a message to {topic} "
                                    f"within {self.settings.submit_timeout:g}s")
        if result[0] is not None:
            raise result[0]

    def flush(self, timeout: float) -> None:
        left = self._p.flush(timeout)
        if left:
            raise BrokerUnavailable(f"{left} message(s) still unacknowledged by Kafka after {timeout:g}s")

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout``; the rest fails (nothing hangs)."""
        try:
            if self._p.flush(timeout):
                self._p.purge()
                self._p.flush(0)  # serves the purge's failure reports
        finally:
            self._closing.set()
            self._thread.join(timeout=1.0)


class Consumer:
    """The worker's group member: manual offset commits, cooperative-sticky or KIP-848 assignment."""

    def __init__(self, settings: Settings, *, client_id: str, listener: PartitionListener) -> None:
        self.settings = settings
        self.topic = settings.tasks_topic
        self._listener = listener
        self._paused: set[int] = set()  # paused in librdkafka
        self._assigned: set[int] = set()
        self._soft_paused_at: float | None = None
        self._buffer: deque[Record] = deque()  # handed to us by librdkafka, not yet to the worker
        self._watch = FetchWatch(PartitionProbe(self._high_watermark, self._committed, self._seek), log)
        conf = common_config(settings, client_id=client_id)
        conf.update({
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": settings.fetch_max_wait_ms,
            "max.poll.interval.ms": 300_000,
            "allow.auto.create.topics": False,
            "error_cb": self._on_error,
        })
        if settings.consumer_group_protocol == "consumer":
            # KIP-848: the broker assigns and times sessions out (group.consumer.session.timeout.ms).
            conf["group.protocol"] = "consumer"
        else:
            session_ms = int(settings.session_timeout * 1000)
            conf.update({
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": max(100, session_ms // 5),
            })
        if settings.consumer_group_protocol == "consumer":
            _warn_if_broker_sessions_are_long(settings)
        with translate_errors("connect the consumer"):
            self._c = ck.Consumer(conf)
            self._c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                              on_lost=self._on_lost)

    def _on_error(self, err: ck.KafkaError) -> None:
        # Connection trouble is retried by librdkafka itself; the worker sees it as an idle poll.
        log.debug("librdkafka consumer error: %s", err)

    def _on_assign(self, _c: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        got = {tp.partition for tp in partitions}
        self._assigned |= got
        self._listener.on_assigned(got)

    def _on_revoke(self, _c: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        self._gone({tp.partition for tp in partitions}, lost=False)

    def _on_lost(self, _c: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        self._gone({tp.partition for tp in partitions}, lost=True)

    def _gone(self, partitions: set[int], *, lost: bool) -> None:
        self._assigned -= partitions
        self._paused -= partitions
        self._watch.forget(partitions)
        if self._buffer:  # their new owner reads them from the committed offset
            self._buffer = deque(r for r in self._buffer if r.partition not in partitions)
        self._listener.on_revoked(partitions, lost=lost)

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        if self._soft_paused_at is not None:
            if time.monotonic() - self._soft_paused_at < SOFT_PAUSE_SECONDS:
                return []  # librdkafka keeps fetching and heartbeating meanwhile; callbacks wait briefly
            self._hard_pause()
            # Serves callbacks; only partitions assigned since the pause can return records: keep them.
            self._buffer.extend(self._fetch(0, max_records))
            return []
        out: list[Record] = []
        while self._buffer and len(out) < max_records:
            out.append(self._buffer.popleft())
        if len(out) < max_records:
            out.extend(self._fetch(0 if out else timeout_ms, max_records - len(out)))
        return out

    def _fetch(self, timeout_ms: int, max_records: int) -> list[Record]:
        # consume(n, timeout) waits until it has n messages or the timeout passed; a worker wants what
        # is there as soon as there is anything (as kafka-python's poll gives it). So: wait for the
        # first message only, then take what else is already fetched without waiting.
        with translate_errors("poll"):
            first = self._c.poll(timeout_ms / 1000)
            if first is None:
                return []
            msgs = [first]
            if max_records > 1:
                msgs.extend(self._c.consume(num_messages=max_records - 1, timeout=0))
        out: list[Record] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise _error(err, "poll")
                log.debug("consumer: %s", err)
                continue
            partition, offset = m.partition(), m.offset()
            assert partition is not None and offset is not None
            self._watch.delivered(partition, offset)
            hdrs = m.headers()  # None when the message has none: the common case costs nothing
            out.append(Record(partition, offset, m.key(), m.value(), _headers(hdrs) if hdrs else None))
        return out

    def assignment(self) -> set[int]:
        with translate_errors("read the assignment"):
            return {tp.partition for tp in self._c.assignment()}

    def pause_all(self) -> None:
        if self._soft_paused_at is None:
            self._soft_paused_at = time.monotonic()
        elif time.monotonic() - self._soft_paused_at >= SOFT_PAUSE_SECONDS:
            self._hard_pause()  # also catches partitions assigned since the pause began

    def _hard_pause(self) -> None:
        self._watch.paused()  # nothing is fetched by design from here until the resume
        todo = self._assigned - self._paused
        if todo:
            with translate_errors("pause"):
                self._c.pause([ck.TopicPartition(self.topic, p) for p in sorted(todo)])
            self._paused |= todo

    def resume_all(self) -> None:
        self._soft_paused_at = None
        todo = self._paused & self._assigned
        self._paused = set()
        if todo:
            with translate_errors("resume"):
                self._c.resume([ck.TopicPartition(self.topic, p) for p in sorted(todo)])

    def commit(self, positions: dict[int, int], *, sync: bool = False) -> None:
        offsets = [ck.TopicPartition(self.topic, p, pos) for p, pos in positions.items()]
        with translate_errors("commit"):
            if sync:
                self._c.commit(offsets=offsets, asynchronous=False)
            else:
                self._c.commit(offsets=offsets, asynchronous=True)

    def maintain(self, *, paused: bool) -> None:
        """The stall watch (``progress.FetchWatch``): librdkafka has none of kafka-python's known
        stalls, but a partition left unfetched must not strand its tasks whatever the cause."""
        if paused or self._soft_paused_at is not None:
            return  # a full window: checked again once records are taken
        self._watch.check(self._assigned - self._paused)

    def _tp(self, partition: int, offset: int | None = None) -> ck.TopicPartition:
        return ck.TopicPartition(self.topic, partition) if offset is None else \
            ck.TopicPartition(self.topic, partition, offset)

    def _high_watermark(self, partition: int) -> int | None:
        # Asked of the broker: the cached value comes from fetch responses, so it stops moving
        # exactly when a partition stops being fetched.
        _, high = self._c.get_watermark_offsets(self._tp(partition), timeout=0.5)
        return high if high >= 0 else None

    def _committed(self, partition: int) -> int | None:
        (tp,) = self._c.committed([self._tp(partition)], timeout=0.5)
        if tp.offset >= 0:
            return int(tp.offset)
        low, _ = self._c.get_watermark_offsets(self._tp(partition), timeout=0.5)  # auto.offset.reset=earliest
        return low if low >= 0 else None

    def _seek(self, partition: int, offset: int) -> None:
        # The adapter holds it unpaused: a pause flag librdkafka kept all the same goes too.
        self._c.resume([self._tp(partition)])
        self._c.seek(self._tp(partition, offset))

    def close(self) -> None:
        try:
            self._c.close()
        except (ck.KafkaException, RuntimeError):
            log.debug("consumer close failed", exc_info=True)


def _headers(raw: list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None]) -> list[tuple[str, bytes]]:
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items if v is not None]


def _warn_if_broker_sessions_are_long(settings: Settings) -> None:
    """With KIP-848 the broker decides when a silent worker is gone; say so if that is far off."""
    try:
        admin = AdminClient(common_config(settings, client_id="taskq-admin"))
        brokers = admin.list_topics(timeout=3).brokers
        if not brokers:
            return
        resource = ConfigResource(ResourceType.BROKER, str(next(iter(brokers))))
        entries = admin.describe_configs([resource], request_timeout=3)[resource].result(timeout=3)
        entry = entries.get("group.consumer.session.timeout.ms")
        session_ms = int(entry.value) if entry is not None and entry.value else 45_000
    except (ck.KafkaException, TimeoutError, ValueError, KeyError):
        return  # no rights to read broker configs, or no answer in time: nothing to tell
    if session_ms > 2 * settings.session_timeout * 1000:
        log.warning("KIP-848 consumer groups: the broker times a worker's session out after %.0f s "
                    "(group.consumer.session.timeout.ms), so a lost worker's tasks move only then; lower it "
                    "(and group.consumer.min.session.timeout.ms) or set TASKQ_GROUP_PROTOCOL=classic",
                    session_ms / 1000)


class Admin:
    """A librdkafka admin client, reused; thread-safe."""

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        conf = common_config(settings, client_id="taskq-admin")
        conf["socket.connection.setup.timeout.ms"] = max(1000, int(timeout * 1000))
        self._refusals = Refusals()
        conf["error_cb"] = lambda err: _note_refusal(self._refusals, err)
        with translate_errors("connect the admin client"):
            self._a = AdminClient(conf)

    def ensure_topics(self, *, timeout: float = 30.0) -> None:
        s = self.settings
        with self._translated("create topics"):
            existing = set(self._a.list_topics(timeout=timeout).topics)
            wanted = {**{t: s.partitions for t in s.lane_topics()}, s.dead_topic: 1}
            missing = [NewTopic(name, parts, s.replication_factor)
                       for name, parts in wanted.items() if name not in existing]
            if not missing:
                return
            futures = self._a.create_topics(missing, operation_timeout=timeout, request_timeout=timeout)
            for fut in futures.values():
                try:
                    fut.result(timeout=timeout)
                except ck.KafkaException as exc:
                    if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:  # another process won the race
                        raise
            log.info("created topics %s", ", ".join(sorted(futures)))
        self._wait_for_metadata(timeout)

    def _wait_for_metadata(self, timeout: float) -> None:
        """Return once every partition of the new topics has a leader (producers can use them)."""
        deadline = time.monotonic() + timeout
        s = self.settings
        while True:
            md = self._a.list_topics(timeout=max(0.5, deadline - time.monotonic()))
            topics = [md.topics.get(t) for t in (*s.lane_topics(), s.dead_topic)]
            if all(t is not None and t.error is None and t.partitions and
                   all(p.leader >= 0 for p in t.partitions.values()) for t in topics):
                return
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"the topics have no leaders {timeout:g}s after creating them")
            time.sleep(0.05)

    def lag(self) -> dict[int, int]:
        s = self.settings
        parts = [ck.TopicPartition(s.tasks_topic, p) for p in range(s.partitions)]
        with self._translated("read consumer lag"):
            group = ck.ConsumerGroupTopicPartitions(s.group_id, parts)
            fut = self._a.list_consumer_group_offsets([group], request_timeout=self.timeout)[s.group_id]
            # A second beyond the request's own timeout, so librdkafka's error (which names the cause)
            # usually arrives before the wait gives up.
            wait = self.timeout + 1.0
            committed = {tp.partition: tp.offset for tp in fut.result(timeout=wait).topic_partitions}
            latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
            ends_f = self._a.list_offsets({tp: latest for tp in parts}, request_timeout=self.timeout)
            ends = {tp.partition: f.result(timeout=wait).offset for tp, f in ends_f.items()}
        return {p: max(0, ends.get(p, 0) - max(0, committed.get(p, 0))) for p in range(s.partitions)}

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """``translate_errors``, with a refusal Kafka reported meanwhile named: an AdminClient's
        error callback runs only from ``poll``, so it is served before the error is explained."""
        try:
            with translate_errors(what):
                yield
        except BrokerUnavailable as exc:
            with contextlib.suppress(ck.KafkaException, RuntimeError):
                self._a.poll(0)
            raise self._refusals.explain(exc) from exc.__cause__

    def ping(self, *, timeout: float = 3.0) -> None:
        with self._translated("list topics"):
            self._a.list_topics(timeout=timeout)

    def close(self) -> None:
        """Nothing to release: librdkafka frees the client with the object."""


class ConfluentTransport:
    name = "confluent"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def producer(self, *, client_id: str = "taskq-producer") -> Producer:
        return Producer(self.settings, client_id=client_id)

    def consumer(self, *, client_id: str, listener: PartitionListener, log_name: str | None = None) -> Consumer:
        return Consumer(self.settings, client_id=client_id, listener=listener)

    def admin(self, *, timeout: float = 10.0) -> Admin:
        return Admin(self.settings, timeout=timeout)

    def _reader(self) -> ck.Consumer:
        conf = common_config(self.settings, client_id="taskq-reader")
        # assign() needs a group id, but nothing is committed or joined.
        conf |= {"group.id": "taskq-reader", "enable.auto.commit": False, "enable.auto.offset.store": False}
        return ck.Consumer(conf)

    def _ends(self, c: ck.Consumer, topic: str, partitions: list[int], timeout: float) -> dict[int, tuple[int, int]]:
        out = {}
        for p in partitions:
            try:
                out[p] = c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=timeout)
            except ck.KafkaException as exc:
                raise _error(exc.args[0], f"read {topic}") from exc
        return out

    def _partitions(self, c: ck.Consumer, topic: str, timeout: float) -> list[int]:
        try:
            meta = c.list_topics(topic, timeout=timeout).topics.get(topic)
        except ck.KafkaException as exc:
            raise _error(exc.args[0], f"read {topic}") from exc
        return sorted(meta.partitions) if meta is not None and meta.error is None else []

    def read_tail(self, topic: str, limit: int, *, timeout: float = 10.0) -> list[Record]:
        c = self._reader()
        try:
            marks = self._ends(c, topic, self._partitions(c, topic, timeout), timeout)
            start = {p: max(lo, hi - limit) for p, (lo, hi) in marks.items() if hi > lo}
            c.assign([ck.TopicPartition(topic, p, o) for p, o in start.items()])
            return _consume_until(c, topic, {p: marks[p][1] for p in start}, timeout)
        finally:
            c.close()

    def read_at(self, topic: str, partition: int, offset: int, *, timeout: float = 10.0) -> Record | None:
        c = self._reader()
        try:
            if partition not in self._partitions(c, topic, timeout):
                return None
            lo, hi = self._ends(c, topic, [partition], timeout)[partition]
            if not lo <= offset < hi:
                return None
            c.assign([ck.TopicPartition(topic, partition, offset)])
            found = [r for r in _consume_until(c, topic, {partition: offset + 1}, timeout) if r.offset == offset]
            return found[0] if found else None
        finally:
            c.close()


def _consume_until(c: ck.Consumer, topic: str, ends: dict[int, int], timeout: float) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while ends and time.monotonic() < deadline:
        for m in c.consume(num_messages=500, timeout=0.2):
            err = m.error()
            if err is not None:
                if err.code() == ck.KafkaError._PARTITION_EOF:
                    continue
                raise _error(err, f"read {topic}")
            p, o = m.partition(), m.offset()
            if p is None or o is None:
                continue
            kind, ts = m.timestamp()
            out.append(Record(p, o, m.key(), m.value(), _headers(m.headers() or []) or None,
                              ts / 1000 if kind != ck.TIMESTAMP_NOT_AVAILABLE and ts > 0 else None))
            if p in ends and o + 1 >= ends[p]:
                del ends[p]
    if ends:
        raise BrokerUnavailable(f"reading {topic} did not finish within {timeout:g}s")
    return out


__all__ = ["Admin", "ConfluentTransport", "Consumer", "Producer"]
