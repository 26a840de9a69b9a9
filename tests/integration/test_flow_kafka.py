"""Records kafka-python parks while their partition is paused come back after the worker resumes it.

Against real Kafka: partition A is paused with fetched records still in-line (a poll took one of
them), partition B's records are then drained; plain ``resume()`` in kafka-python 3.0.12 leaves A's
records parked for ever and never fetches A again (the stall the chaos test caught). The worker's
``resume_all`` releases them. ``stalls`` reports what the library alone does; if it turns false, a
later kafka-python fixed it and flow.release_parked can go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from taskq.broker import ensure_topics
from taskq.settings import Settings
from taskq.worker.flow import resume_all


def _pause_with_records_in_line(settings: Settings, resume: Callable[[Any, TopicPartition], None]) -> list[int]:
    """Offsets of partition A delivered within 3 s after pausing it mid-batch and resuming it."""
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
        got_other = 0
        while got_other < 20 and time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=200, max_records=100)  # parks the paused one's records
            got_other += len(got.get(other, []))
        assert got_other == 20
        resume(consumer, paused)
        offsets = [r.offset for r in records]
        until = time.monotonic() + 3
        while time.monotonic() < until and len(offsets) < 20:
            offsets += [r.offset for r in consumer.poll(timeout_ms=100).get(paused, [])]
        return offsets
    finally:
        consumer.close()


def test_records_parked_while_a_partition_was_paused_arrive_after_resume_all(settings: Settings) -> None:
    offsets = _pause_with_records_in_line(settings, lambda c, _tp: resume_all(c))
    assert offsets == list(range(20))


def test_plain_resume_in_kafka_python_leaves_them_parked(settings: Settings) -> None:
    # The library's behaviour that resume_all works around: documents why it exists.
    offsets = _pause_with_records_in_line(settings, lambda c, tp: c.resume(tp))
    stalls = len(offsets) < 20
    assert stalls, "kafka-python now restores parked records by itself: flow.release_parked can go"
