"""Records kafka-python parks while their partition is paused come back after the worker resumes it.

Against real Kafka: partition A is paused with fetched records still in-line (a poll took one of
them), partition B's records are then drained; plain ``resume()`` in kafka-python 3.0.12 leaves A's
records parked for ever and never fetches A again (the stall the chaos test caught). The worker's
``resume_all`` releases them. ``stalls`` reports what the library alone does; if it turns false, a
later kafka-python fixed it and flow.release_parked can go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from taskq.kafka import ensure_topics
from taskq.kafka.kafka_python.flow import StallWatch, resume_all
from taskq.settings import Settings


def _pause_with_records_in_line(settings: Settings, resume: Callable[[Any, TopicPartition], None], *,
                                other_in_line: bool = False, seconds: float = 3.0) -> list[int]:
    """Offsets of partition A delivered within ``seconds`` after pausing it mid-batch and resuming it.

    With ``other_in_line`` the other partition's records are only partly taken when A is resumed,
    so they, not an exhausted batch, hold kafka-python's in-line slot.
    """
    ensure_topics(settings)
    topic = settings.tasks_topic
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=50)
    for p in (0, 1):
        for i in range(20):
            producer.send(topic, f"{p}-{i}".encode(), partition=p)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        a, b = TopicPartition(topic, 0), TopicPartition(topic, 1)
        consumer.assign([a, b])
        consumer.seek_to_beginning(a, b)
        first: dict[TopicPartition, list[Any]] = {}
        deadline = time.monotonic() + 20
        while not first and time.monotonic() < deadline:
            first = consumer.poll(timeout_ms=200, max_records=1)  # one record; the rest of its batch stays in-line
        assert first, "nothing fetched"
        (paused, records), = first.items()
        other = b if paused == a else a
        consumer.pause(paused)
        got_other, want_other = 0, (1 if other_in_line else 20)
        while got_other < want_other and time.monotonic() < deadline:
            # Parks the paused partition's records, then takes the other one's.
            got = consumer.poll(timeout_ms=200, max_records=want_other - got_other)
            got_other += len(got.get(other, []))
        assert got_other == want_other
        resume(consumer, paused)
        offsets = [r.offset for r in records]
        until = time.monotonic() + seconds
        while time.monotonic() < until and len(offsets) < 20:
            offsets += [r.offset for r in consumer.poll(timeout_ms=100).get(paused, [])]
        return offsets
    finally:
        consumer.close()


def test_records_parked_while_a_partition_was_paused_arrive_after_resume_all(settings: Settings) -> None:
    offsets = _pause_with_records_in_line(settings, lambda c, _tp: resume_all(c))
    assert offsets == list(range(20))


def test_parked_records_arrive_after_resume_all_while_another_partition_holds_the_slot(
    settings: Settings,
) -> None:
    offsets = _pause_with_records_in_line(settings, lambda c, _tp: resume_all(c), other_in_line=True)
    assert offsets == list(range(20))


def test_the_stall_watch_gets_a_stranded_partition_fetched_again(settings: Settings) -> None:
    watch = StallWatch(log=logging.getLogger("test"), stall_seconds=1.0)

    def resume_and_watch(consumer: Any, tp: TopicPartition) -> None:
        consumer.resume(tp)  # the library alone strands it; the watch must notice and fix it
        for _ in range(15):
            consumer.poll(timeout_ms=100, max_records=1)  # returns nothing of the stranded partition
            watch.check(consumer, paused=False)
            if watch.resets:
                return

    offsets = _pause_with_records_in_line(settings, resume_and_watch, seconds=5.0)
    assert watch.resets == 1
    assert offsets == list(range(20))


def test_plain_resume_in_kafka_python_leaves_them_parked(settings: Settings) -> None:
    # The library's behaviour that resume_all works around: documents why it exists.
    offsets = _pause_with_records_in_line(settings, lambda c, tp: c.resume(tp))
    stalls = len(offsets) < 20
    assert stalls, "kafka-python now restores parked records by itself: flow.release_parked can go"
