"""Session services (a real Kafka broker and Redis, on free ports) and factories that clean up."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from taskq.api.app import create_app
from taskq.client import Client
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.settings import Settings
from taskq.store import Store

# The delivery-semantics tests (modules marked ``both_clients``) run once per Kafka client; the rest
# use TASKQ_TEST_KAFKA_CLIENT (default kafka-python), so the whole suite can be run with either.
KAFKA_CLIENTS = ("kafka-python", "confluent")
DEFAULT_KAFKA_CLIENT = os.environ.get("TASKQ_TEST_KAFKA_CLIENT", "kafka-python")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_clients: run once with each Kafka client (kafka-python, confluent)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("both_clients")
    if "kafka_client" in metafunc.fixturenames and marker is not None:
        # extra=("confluent-classic",) adds librdkafka with the classic group protocol (its default is
        # KIP-848) for the tests that show the difference.
        metafunc.parametrize("kafka_client", [*KAFKA_CLIENTS, *marker.kwargs.get("extra", ())], indirect=True)


def client_settings(kafka_client: str) -> dict[str, object]:
    """Settings overrides for a test's Kafka client name (``confluent-classic``: the classic protocol)."""
    if kafka_client == "confluent-classic":
        return {"kafka_client": "confluent", "group_protocol": "classic"}
    return {"kafka_client": kafka_client}


@pytest.fixture
def kafka_client(request: pytest.FixtureRequest) -> str:
    """The Kafka client library of this test's settings."""
    return str(getattr(request, "param", DEFAULT_KAFKA_CLIENT))


@dataclass
class Services:
    kafka: KafkaServer
    redis: RedisServer


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("services")
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    # The same session timeout for KIP-848 groups (kept by the broker) as make_settings gives classic ones.
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port(),
                        group_session_seconds=6.0)
    redis.start()
    try:
        kafka.start()
    except BaseException:
        redis.stop()
        raise
    yield Services(kafka, redis)
    kafka.stop()
    redis.stop()


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as TASKQ_* variables, for child processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_") or k == "TASKQ_KAFKA_JARS"}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TASKQ_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def make_settings(services: Services, **overrides: object) -> Settings:
    uid = uuid.uuid4().hex[:10]
    base: dict[str, object] = {
        "kafka_bootstrap": services.kafka.bootstrap,
        "redis_url": services.redis.url,
        "tasks_topic": f"tasks-{uid}",
        "dead_topic": f"dead-{uid}",
        "group_id": f"workers-{uid}",
        "prefix": f"tq-{uid}:",
        "partitions": 6,
        "session_timeout": 6.0,
        "heartbeat_interval": 0.5,
        "heartbeat_ttl": 3.0,
        "shutdown_grace": 20.0,
        "kafka_client": DEFAULT_KAFKA_CLIENT,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(services: Services, kafka_client: str) -> Settings:
    return make_settings(services, **client_settings(kafka_client))


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    ensure_topics(settings)
    c = Client(settings)
    yield c
    c.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings)
    yield s
    s.close()


@dataclass
class WorkerProc:
    id: str
    proc: subprocess.Popen[bytes]
    log: Path
    settings: Settings
    started: float = field(default_factory=time.monotonic)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        stop_process(self.proc, timeout=10, sig=9)

    def terminate(self) -> None:
        os.kill(self.proc.pid, 15)

    def wait(self, timeout: float = 40) -> int:
        return self.proc.wait(timeout=timeout)


WorkerFactory = Callable[..., WorkerProc]


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start ``taskq worker`` processes; every one still running at the end is stopped."""
    procs: list[WorkerProc] = []
    started = itertools.count()

    def start(worker_id: str, *, concurrency: int = 4, wait_ready: bool = True, settings_: Settings | None = None,
              extra: list[str] | None = None) -> WorkerProc:
        s = settings_ or settings
        log = tmp_path / f"{worker_id}-{next(started)}.log"
        with open(log, "wb") as fh:
            proc = spawn([sys.executable, "-m", "taskq", "worker", "--id", worker_id, "--concurrency",
                          str(concurrency), *(extra or [])], env=settings_env(s), stdout=fh)
        w = WorkerProc(worker_id, proc, log, s)
        procs.append(w)
        if wait_ready:
            # A join kafka-python dropped is re-done by the worker's JoinGuard within seconds; no retry here,
            # so a worker that never joins fails the test.
            wait_for(lambda: "partitions assigned" in w.output() or proc.poll() is not None, timeout=30,
                     what=f"{worker_id} to join the group")
            assert proc.poll() is None, w.output()
        return w

    yield start
    # Graceful stops are tested where they matter; here a worker still busy with a long task after
    # 3 s is killed rather than waited for (a slow task's teardown cost 10 s per test).
    for w in procs:
        if w.proc.poll() is None:
            os.kill(w.proc.pid, 15)
    for w in procs:
        stop_process(w.proc, timeout=3, sig=None)


def wait_for(check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_all(client: Client, ids: list[str], *, timeout: float) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    return [client.wait(i, timeout=max(0.1, deadline - time.monotonic())) for i in ids]


class ApiServer:
    """The API app in a uvicorn server thread on a free loopback port."""

    def __init__(self, settings: Settings, *, topics: bool = True) -> None:
        if topics:
            ensure_topics(settings)
        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20, what="the API server")
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


