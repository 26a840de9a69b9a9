"""``taskq dev``: the whole stack on this machine, logs prefixed by component."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .prometheus import DEV_NAMESPACE, PrometheusServer, chart_rules, find_prometheus
from .services import KafkaServer, RedisServer, free_port, port_in_use, python_argv, spawn, stop_process, wait_until

COLORS = ["36", "32", "33", "35", "34", "31", "96", "92", "93"]


# A worker that died is started again after this back-off, doubled at each death in a row up to
# the cap, as Kubernetes restarts a crashed pod; one that ran this long is healthy again.
RESTART_BACKOFF, RESTART_BACKOFF_MAX, RESTART_HEALTHY = 1.0, 30.0, 60.0


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None = field(default=None)
    argv: list[str] = field(default_factory=list)
    color: str = "0"
    started: float = field(default_factory=time.monotonic)
    deaths: int = 0  # in a row
    restart_at: float | None = None


class DevStack:
    def __init__(self, *, root: Path, workers: int, port: int, kafka_port: int, redis_port: int,
                 concurrency: int, tasks_modules: list[str], metrics_port: int = 9100,
                 prometheus: bool = False, prometheus_port: int = 0) -> None:
        self.root = root
        # Worker N serves /metrics on metrics_port + N (0: none), so Prometheus can scrape each one.
        self.metrics_port = metrics_port
        self.n_workers = workers
        self.port = port
        self.kafka = KafkaServer(data_dir=root / "kafka", port=kafka_port, controller_port=kafka_port + 1)
        self.redis = RedisServer(data_dir=root / "redis", port=redis_port)
        self.concurrency = concurrency
        self.tasks_modules = tasks_modules
        self.children: list[_Child] = []
        self._print_lock = threading.Lock()
        self._color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self._width = max(8, len(f"worker{workers}"), len("prometheus") if prometheus else 0)
        # Prometheus on a free port unless one is asked for: a system Prometheus (Debian's package
        # starts one where systemd runs) already holds 9090.
        self.prometheus = PrometheusServer(
            data_dir=root / "prometheus", port=prometheus_port or free_port(), scrape_interval=5.0,
            labels={"namespace": DEV_NAMESPACE}) if prometheus else None

    def say(self, name: str, line: str, color: str = "0") -> None:
        label = f"{name:<{self._width}}"
        with self._print_lock:
            if self._color:
                sys.stdout.write(f"\x1b[{color}m{label}\x1b[0m | {line}\n")
            else:
                sys.stdout.write(f"{label} | {line}\n")
            sys.stdout.flush()

    def _pump(self, child: _Child, color: str) -> None:
        assert child.proc.stdout is not None
        for raw in iter(child.proc.stdout.readline, b""):
            self.say(child.name, raw.decode(errors="replace").rstrip(), color)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "TASKQ_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "TASKQ_REDIS_URL": self.redis.url,
            "TASKQ_METRICS_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        })
        if self.tasks_modules:
            env["TASKQ_TASKS_MODULES"] = ",".join(self.tasks_modules)
        # On a developer's machine the seed's lines show each task's args and result.
        env.setdefault("TASKQ_LOG_ARGS", "true")
        return env

    def _start_child(self, name: str, argv: list[str], color: str) -> _Child:
        child = _Child(name, spawn(argv, env=self._env(), stdout=subprocess.PIPE), argv=argv, color=color)
        child.pump = threading.Thread(target=self._pump, args=(child, color), daemon=True)
        child.pump.start()
        self.children.append(child)
        return child

    def _restart(self, child: _Child) -> None:
        """A dead worker's process again, under the same name (called from the main thread: a child
        dies with the thread that spawned it)."""
        if child.pump is not None:
            child.pump.join(timeout=2)
        child.proc = spawn(child.argv, env=self._env(), stdout=subprocess.PIPE)
        child.started, child.restart_at = time.monotonic(), None
        child.pump = threading.Thread(target=self._pump, args=(child, child.color), daemon=True)
        child.pump.start()
        self.say("dev", f"{child.name} restarted (pid {child.proc.pid})")

    def worker_metrics_port(self, i: int) -> int | None:
        return self.metrics_port + i if self.metrics_port else None

    def _check_ports(self) -> None:
        wanted = [(self.port, "--port", "the API"), (self.redis.port, "--redis-port", "Redis"),
                  (self.kafka.port, "--kafka-port", "Kafka"),
                  (self.kafka.controller_port, "--kafka-port", "Kafka's controller")]
        wanted += [(p, "--metrics-port", f"worker{i}'s metrics") for i in range(1, self.n_workers + 1)
                   if (p := self.worker_metrics_port(i)) is not None]
        if self.prometheus is not None:
            wanted.append((self.prometheus.port, "--prometheus-port", "Prometheus"))
        seen: dict[int, str] = {}
        for port, option, what in wanted:
            if port in seen:
                raise ConfigError(f"port {port} is wanted by both {seen[port]} and {what}: pass {option} to move it")
            seen[port] = what
        for port, option, what in wanted:
            if port_in_use(port):
                raise ConfigError(f"port {port} (for {what}) is already in use: stop what holds it or pass {option}")

    def _shown(self, path: Path) -> str:
        """A path relative to the working directory when it is inside it (what a user typed)."""
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def _worker_targets(self) -> list[str]:
        """The metrics endpoints of the workers still running."""
        return [f"127.0.0.1:{port}" for c in self.children if c.name.startswith("worker") and c.proc.poll() is None
                and (port := self.worker_metrics_port(int(c.name.removeprefix("worker")))) is not None]

    def start(self) -> None:
        self._check_ports()
        if self.prometheus is not None:
            # Before anything starts: a missing binary or chart is one line, not a stack to stop.
            self.prometheus.binary = find_prometheus()
            self.prometheus.rules = chart_rules()
        t0 = time.monotonic()
        self.say("redis", f"starting on {self.redis.url} (AOF in {self._shown(self.redis.data_dir)})")
        self.redis.start()
        self.say("kafka", f"starting on {self.kafka.bootstrap} (KRaft, data in {self._shown(self.kafka.data_dir)})")
        self.kafka.start()
        self.say("kafka", f"ready after {time.monotonic() - t0:.1f}s")
        from ..kafka import ensure_topics
        from ..settings import Settings

        ensure_topics(Settings(kafka_bootstrap=self.kafka.bootstrap, redis_url=self.redis.url))
        api = self._start_child("api", python_argv("api", "--host", "127.0.0.1", "--port", str(self.port)), COLORS[0])
        for i in range(1, self.n_workers + 1):
            metrics = self.worker_metrics_port(i)
            self._start_child(
                f"worker{i}",
                python_argv("worker", "--id", f"worker{i}", "--concurrency", str(self.concurrency),
                            *(["--metrics-port", str(metrics)] if metrics is not None else [])),
                COLORS[i % len(COLORS)],
            )
        wait_until(lambda: port_in_use(self.port), timeout=30, what="API", proc=api.proc)
        if self.prometheus is not None:
            prom = self.prometheus
            self.say("prometheus", f"starting on {prom.url} (scraping every {prom.scrape_interval:g}s; data and log "
                                   f"in {self._shown(prom.data_dir)})")
            prom.set_targets("taskq-api", [f"127.0.0.1:{self.port}"])
            prom.set_targets("taskq-workers", self._worker_targets())
            prom.start()
        self.say("dev", f"ready in {time.monotonic() - t0:.1f}s")
        self.say("dev", f"  web UI + API   http://127.0.0.1:{self.port}/   (OpenAPI: /api/docs)")
        self.say("dev", f"  API metrics    http://127.0.0.1:{self.port}/metrics")
        self.say("dev", f"  Kafka          {self.kafka.bootstrap}   (log: {self._shown(self.kafka.log_path)})")
        self.say("dev", f"  Redis          {self.redis.url}")
        self.say("dev", f"  workers        worker1..worker{self.n_workers}, concurrency {self.concurrency}")
        for i in range(1, self.n_workers + 1):
            if (metrics := self.worker_metrics_port(i)) is not None:
                self.say("dev", f"  worker{i} metrics http://127.0.0.1:{metrics}/metrics")
        if self.prometheus is not None:
            prom = self.prometheus
            self.say("dev", f"  Prometheus     {prom.url}/   (/targets, /alerts: the chart's rules)")
        self.say("dev", "  try: taskq submit add 1 2 --wait   |   taskq workers   |   Ctrl-C stops everything")

    def wait(self) -> None:
        """Block until Ctrl-C/SIGTERM. A worker that dies is restarted after a back-off, as a pod is;
        another dead child (the API) is reported."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        reported: set[int] = set()
        while not stop.wait(0.5):
            self.tend()
            for c in self.children:
                if c.proc.poll() is not None and not c.name.startswith("worker") and c.proc.pid not in reported:
                    reported.add(c.proc.pid)
                    self.say("dev", f"{c.name} exited with code {c.proc.returncode}")

    def tend(self, now: float | None = None) -> None:
        """Schedule the restart of workers that died, and restart those whose back-off is over."""
        now = time.monotonic() if now is None else now
        for c in self.children:
            if not c.name.startswith("worker") or c.proc.poll() is None:
                continue
            if c.restart_at is None:
                c.deaths = 1 if now - c.started >= RESTART_HEALTHY else c.deaths + 1
                delay = min(RESTART_BACKOFF * 2 ** (c.deaths - 1), RESTART_BACKOFF_MAX)
                c.restart_at = now + delay
                self.say("dev", f"{c.name} exited with code {c.proc.returncode}; restarting in {delay:.0f}s"
                                f"{f' ({c.deaths} deaths in a row)' if c.deaths > 1 else ''}")
                if self.prometheus is not None:
                    self.prometheus.set_targets("taskq-workers", self._worker_targets())
            elif now >= c.restart_at:
                self._restart(c)
                if self.prometheus is not None:
                    self.prometheus.set_targets("taskq-workers", self._worker_targets())

    def stop(self) -> None:
        self.say("dev", "stopping: workers finish their tasks, then API, " +
                 ("Prometheus, " if self.prometheus is not None else "") + "Redis, Kafka")
        workers = [c for c in self.children if c.name.startswith("worker")]
        for c in workers:
            if c.proc.poll() is None:
                os.kill(c.proc.pid, signal.SIGTERM)
        for c in workers:
            stop_process(c.proc, timeout=35, sig=None)
        for c in self.children:
            if c not in workers:
                stop_process(c.proc, timeout=10)
        for c in self.children:
            if c.pump is not None:
                c.pump.join(timeout=2)
        if self.prometheus is not None:
            self.prometheus.stop()
        self.redis.stop()
        self.kafka.stop()
        self.say("dev", "all stopped")
