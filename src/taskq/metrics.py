"""Prometheus metrics. Each process builds its own registry; nothing is global.

Names start with ``taskq_``, durations are seconds, labels are task/status/worker/partition/topic
only (never task ids, which would explode cardinality).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# 1 ms to 10 min: short arithmetic tasks through long batch jobs.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


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
        self._running = self._in_flight.labels(worker)
        self._running.set(0)
        self._redis_errors.labels(worker)
        self._kafka_errors.labels(worker)
        # Labelled children of the per-task series, looked up once per task name (hot path: two
        # .labels() calls per event cost ~5% of a worker's loop thread).
        self._start_children: dict[str, tuple[Any, Any]] = {}
        self._finish_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def started(self, task: str, *, wait: float, running: int) -> None:
        children = self._start_children.get(task)
        if children is None:
            children = self._start_children[task] = (self._started.labels(task, self.worker),
                                                      self._wait.labels(task))
        children[0].inc()
        children[1].observe(wait)
        self._running.set(running)

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

    def dead_lettered(self, task: str) -> None:
        self._dead.labels(task, self.worker).inc()

    def redis_error(self) -> None:
        self._redis_errors.labels(self.worker).inc()

    def kafka_error(self) -> None:
        self._kafka_errors.labels(self.worker).inc()

    def heartbeat(self, *, partitions: list[int], concurrency: int) -> None:
        self._partitions.labels(self.worker).set(len(partitions))
        self._capacity.labels(self.worker).set(concurrency)

class ApiMetrics:
    """What the API process exports on ``/metrics``: submissions plus cluster-wide gauges."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._submitted = Counter("taskq_tasks_submitted_total", "Tasks accepted (acknowledged by Kafka).",
                                  ["task"], registry=r)
        self._lag = Gauge("taskq_consumer_lag", "Messages not yet committed by the worker group, per partition.",
                          ["topic", "partition"], registry=r)
        self._lag_total = Gauge("taskq_consumer_lag_total", "Sum of consumer lag over partitions.", ["topic"],
                                registry=r)
        self._workers = Gauge("taskq_workers", "Workers by status (alive, lost, stopped).", ["status"], registry=r)
        self._hb_age = Gauge("taskq_worker_heartbeat_age_seconds", "Seconds since a live worker's last heartbeat.",
                             ["worker"], registry=r)
        self._kafka_errors = Counter("taskq_api_kafka_produce_errors_total", "Submissions Kafka did not accept.",
                                     registry=r)
        self._redis_errors = Counter("taskq_api_redis_errors_total", "Failed Redis operations in the API.",
                                     registry=r)
        self._refused = Counter("taskq_api_submissions_refused_total",
                                "Submissions refused with 503 because the API was at TASKQ_API_MAX_INFLIGHT.",
                                registry=r)
        self.topic = "taskq.tasks"

    def submitted(self, task: str, n: int = 1) -> None:
        self._submitted.labels(task).inc(n)

    def kafka_error(self) -> None:
        self._kafka_errors.inc()

    def refused(self) -> None:
        self._refused.inc()

    def redis_error(self) -> None:
        self._redis_errors.inc()

    def observe_lag(self, lag: dict[int, int]) -> None:
        for p, v in lag.items():
            self._lag.labels(self.topic, str(p)).set(v)
        self._lag_total.labels(self.topic).set(sum(lag.values()))

    def observe_workers(self, workers: list[Any]) -> None:
        import time

        counts = {"alive": 0, "lost": 0, "stopped": 0}
        self._hb_age.clear()
        for w in workers:
            counts[w.status] = counts.get(w.status, 0) + 1
            if w.status == "alive" and w.last_heartbeat:
                self._hb_age.labels(w.id).set(max(0.0, time.time() - w.last_heartbeat))
        for status, n in counts.items():
            self._workers.labels(status).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
