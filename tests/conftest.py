"""Session services (a real Kafka broker and Redis, on free ports) and factories that clean up.

Helpers the tests import (settings, waiting, the API server) are in tests/helpers.py."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.client import Client
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.settings import Settings
from taskq.store import Store
from tests.helpers import (
    DEFAULT_KAFKA_CLIENT,
    KAFKA_CLIENTS,
    Services,
    WorkerFactory,
    WorkerProc,
    client_settings,
    make_settings,
    settings_env,
    wait_for,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_clients: run once with each Kafka client (kafka-python, confluent)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("both_clients")
    if "kafka_client" in metafunc.fixturenames and marker is not None:
        # extra=("confluent-classic",) adds librdkafka with the classic group protocol (its default is
        # KIP-848) for the tests that show the difference.
        metafunc.parametrize("kafka_client", [*KAFKA_CLIENTS, *marker.kwargs.get("extra", ())], indirect=True)


@pytest.fixture
def kafka_client(request: pytest.FixtureRequest) -> str:
    """The Kafka client library of this test's settings."""
    return str(getattr(request, "param", DEFAULT_KAFKA_CLIENT))


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
