"""Prometheus metrics. Each process builds its own registry; nothing is global.

Names start with ``taskq_``, durations are seconds, labels are task/status/worker/partition/topic
only (never task ids, which would explode cardinality).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

# 1 ms to 10 min: short arithmetic tasks through long batch jobs.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# The outcomes of a run in taskq_tasks_finished_total's status label.
FINISHED_STATUSES = ("success", "failed", "retried", "dead")



# The reason label of taskq_invalid_messages_total: a few fixed values, never the message itself.
_INVALID_REASONS = (("empty message", "empty"), ("not JSON", "not_json"),
                    ("message is not a JSON object", "not_object"), ("unsupported wire version", "version"),
                    ("field ", "field"), ("nested", "too_deep"), ("cannot be started", "unstartable"))
INVALID_LABELS = (*dict.fromkeys(label for _, label in _INVALID_REASONS), "unreadable")
# The task label of a dead letter whose message could not be read as a task at all.
UNDECODABLE = "(undecodable)"


def invalid_reason(why: str) -> str:
    if "nested deeper" in why or "nested too deep" in why:
        return "too_deep"
    for prefix, label in _INVALID_REASONS:
        if why.startswith(prefix):
            return label
    return "unreadable"

class WorkerMetrics:
    """What one worker process exports on its ``/metrics`` port."""

    def __init__(self, *, worker: str, registry: CollectorRegistry | None = None) -> None:
        self.worker = worker
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._started = Counter("taskq_tasks_started_total", "Task runs started.", ["task", "worker"], registry=r)
        self._finished = Counter(
            "taskq_tasks_finished_total", "Task runs finished, by outcome (success, failed, retried, dead).",
            ["task", "status", "worker"], registry=r,
        )
        self._redelivered = Counter(
            "taskq_tasks_redelivered_total", "Runs that are a re-delivery after a lost worker.",
            ["task", "worker"], registry=r,
        )
        self._skipped = Counter(
            "taskq_tasks_skipped_total", "Messages acknowledged without running (already finished or cancelled).",
            ["task", "worker"], registry=r,
        )
        self._held = Counter(
            "taskq_tasks_held_total", "Starts held back by a flow-control limit (rate limit, concurrency limit).",
            ["task", "reason", "worker"], registry=r,
        )
        self._dead = Counter("taskq_tasks_dead_lettered_total", "Messages sent to the dead-letter topic.",
                             ["task", "worker"], registry=r)
        self._run = Histogram("taskq_task_run_seconds", "Time a task function ran.", ["task"],
                              buckets=DURATION_BUCKETS, registry=r)
        self._wait = Histogram("taskq_task_wait_seconds", "Time from submission to start of a run.", ["task"],
                               buckets=DURATION_BUCKETS, registry=r)
        self._in_flight = Gauge("taskq_worker_tasks_in_flight", "Tasks running now.", ["worker"], registry=r)
        self._capacity = Gauge("taskq_worker_concurrency", "Concurrency limit (task slots).", ["worker"], registry=r)
        self._partitions = Gauge("taskq_worker_partitions", "Partitions this worker owns.", ["worker"], registry=r)
        self._redis_errors = Counter("taskq_redis_errors_total", "Failed Redis operations.", ["worker"], registry=r)
        self._kafka_errors = Counter("taskq_kafka_produce_errors_total", "Failed Kafka produce calls.",
                                     ["worker"], registry=r)
        self._invalid = Counter("taskq_invalid_messages_total",
                                "Messages on the tasks topic that can never run (dead-lettered), by reason.",
                                ["reason", "worker"], registry=r)
        self._poison = Counter("taskq_poison_tasks_total",
                               "Tasks ended dead because their runs kept losing their worker.", ["task", "worker"],
                               registry=r)
        self._internal = Counter("taskq_worker_internal_errors_total",
                                 "Unexpected errors the worker contained (isolated, logged with a traceback).",
                                 ["worker"], registry=r)
        self._running = self._in_flight.labels(worker)
        self._running.set(0)
        self._redis_errors.labels(worker)
        self._kafka_errors.labels(worker)
        self._internal.labels(worker)
        # A worker's first unreadable message must show as an increase too (see _zero).
        self._dead.labels(UNDECODABLE, worker)
        for reason in INVALID_LABELS:
            self._invalid.labels(reason, worker)
        # Labelled children of the per-task series, looked up once per task name (hot path: two
        # .labels() calls per event cost ~5% of a worker's loop thread).
        self._start_children: dict[str, tuple[Any, Any]] = {}
        self._finish_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def started(self, task: str, *, wait: float, running: int) -> None:
        children = self._start_children.get(task)
        if children is None:
            children = self._start_children[task] = (self._started.labels(task, self.worker),
                                                      self._wait.labels(task))
            self._zero(task)
        children[0].inc()
        children[1].observe(wait)
        self._running.set(running)

    def known_tasks(self, tasks: Iterable[str]) -> None:
        """Put the per-task series of every task this worker can run at 0 when it starts: a task's
        first dead letter or retry on this worker may come with its first run here (a retry taken
        over from another worker), and a series born at 1 shows no increase."""
        for task in tasks:
            self._zero(task)

    def _zero(self, task: str) -> None:
        """Series at 0 from a task's first run on: a series born at 1 hides its first increment from
        rate() and increase(), so the dashboard and the alerts would miss a worker's first failure,
        retry or dead letter of the task."""
        for status in FINISHED_STATUSES:
            self._finished.labels(task, status, self.worker)
        for counter in (self._started, self._dead, self._redelivered, self._skipped):
            counter.labels(task, self.worker)

    def finished(self, task: str, status: str, run_seconds: float, *, running: int) -> None:
        children = self._finish_children.get((task, status))
        if children is None:
            children = self._finish_children[(task, status)] = (self._finished.labels(task, status, self.worker),
                                                                self._run.labels(task))
        children[0].inc()
        children[1].observe(run_seconds)
        self._running.set(running)

    def redelivered(self, task: str) -> None:
        self._redelivered.labels(task, self.worker).inc()

    def skipped(self, task: str) -> None:
        self._skipped.labels(task, self.worker).inc()

    def held(self, task: str, reason: str) -> None:
        self._held.labels(task, reason, self.worker).inc()

    def dead_lettered(self, task: str) -> None:
        self._dead.labels(task, self.worker).inc()

    def invalid_message(self, why: str) -> None:
        self._invalid.labels(invalid_reason(why), self.worker).inc()

    def poison_task(self, task: str) -> None:
        self._poison.labels(task, self.worker).inc()

    def internal_error(self) -> None:
        self._internal.labels(self.worker).inc()

    def redis_error(self) -> None:
        self._redis_errors.labels(self.worker).inc()

    def kafka_error(self) -> None:
        self._kafka_errors.labels(self.worker).inc()

    def heartbeat(self, *, partitions: list[int], concurrency: int) -> None:
        self._partitions.labels(self.worker).set(len(partitions))
        self._capacity.labels(self.worker).set(concurrency)

class ClusterGauges:
    """The cluster-wide gauges the API exports (lag, workers by status, heartbeat ages), as a collector.

    They describe the cluster, not the process: each scrape reads them fresh (``observe_*``) and
    the scraped process reports what it read. Kept out of Prometheus' multiprocess files, where a
    gauge of a process that no longer refreshes it would linger beside the live ones.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.lag: dict[int, int] = {}
        self.workers: dict[str, int] = {"alive": 0, "lost": 0, "stopped": 0}
        self.heartbeat_ages: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("taskq_consumer_lag", "Messages not yet committed by the worker group, per partition.",
                                labels=["topic", "partition"])
        for p, v in sorted(self.lag.items()):
            lag.add_metric([self.topic, str(p)], v)
        yield lag
        total = GaugeMetricFamily("taskq_consumer_lag_total", "Sum of consumer lag over partitions.", labels=["topic"])
        if self.lag:
            total.add_metric([self.topic], sum(self.lag.values()))
        yield total
        workers = GaugeMetricFamily("taskq_workers", "Workers by status (alive, lost, stopped).", labels=["status"])
        for status, n in self.workers.items():
            workers.add_metric([status], n)
        yield workers
        ages = GaugeMetricFamily("taskq_worker_heartbeat_age_seconds", "Seconds since a live worker's last heartbeat.",
                                 labels=["worker"])
        for wid, age in sorted(self.heartbeat_ages.items()):
            ages.add_metric([wid], age)
        yield ages


class ApiMetrics:
    """What the API exports on ``/metrics``: submissions plus cluster-wide gauges.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (``taskq api --workers N``) the counters are shared by
    every API process through prometheus_client's multiprocess files, so any process's scrape
    reports the totals of all of them.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None, topic: str = "taskq.tasks") -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._submitted = Counter("taskq_tasks_submitted_total", "Tasks accepted (acknowledged by Kafka).",
                                  ["task"], registry=r)
        self._kafka_errors = Counter("taskq_api_kafka_produce_errors_total", "Submissions Kafka did not accept.",
                                     registry=r)
        self._redis_errors = Counter("taskq_api_redis_errors_total", "Failed Redis operations in the API.",
                                     registry=r)
        self._refused = Counter("taskq_api_submissions_refused_total",
                                "Submissions refused with 503 because the API was at TASKQ_API_MAX_INFLIGHT.",
                                registry=r)
        self.cluster = ClusterGauges(topic)
        self.exposition = CollectorRegistry()
        if self.multiprocess_dir:
            MultiProcessCollector(self.exposition, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self.exposition.register(_Forward(self.registry))
        self.exposition.register(self.cluster)

    def submitted(self, task: str, n: int = 1) -> None:
        self._submitted.labels(task).inc(n)

    def kafka_error(self) -> None:
        self._kafka_errors.inc()

    def refused(self) -> None:
        self._refused.inc()

    def redis_error(self) -> None:
        self._redis_errors.inc()

    def observe_lag(self, lag: dict[int, int]) -> None:
        self.cluster.lag = dict(lag)

    def observe_workers(self, workers: list[Any]) -> None:
        counts = {"alive": 0, "lost": 0, "stopped": 0}
        ages: dict[str, float] = {}
        now = time.time()
        for w in workers:
            counts[w.status] = counts.get(w.status, 0) + 1
            if w.status == "alive" and w.last_heartbeat:
                ages[w.id] = max(0.0, now - w.last_heartbeat)
        self.cluster.workers, self.cluster.heartbeat_ages = counts, ages

    def render(self) -> bytes:
        return generate_latest(self.exposition)


class _Forward:
    """Exposes another registry's metrics inside the scrape registry (single-process mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())
