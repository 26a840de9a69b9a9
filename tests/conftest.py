"""Session services (a real Kafka broker and Redis, on free ports), factories that clean up, and the
rule that marks ``integration`` every test needing them. Helpers the tests import are in tests/helpers.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.client import Client
from taskq.devstack import KafkaServer, RedisServer, free_port, stop_process
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
    start_worker_process,
)

TESTS = Path(__file__).resolve().parent
# Folders whose every test needs Kafka and Redis, some started by the test itself (taskq dev, a
# broker of its own, the chaos run) rather than through the ``services`` fixture.
SERVICE_FOLDERS = ("integration", "chaos")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_clients: run once with each Kafka client (kafka-python, confluent)")


# A test slower than this is named at the end of the run, so a slow test is noticed when it is
# written (a report, never a failure: the machine may be busy).
TEST_BUDGET = float(os.environ.get("TASKQ_TEST_BUDGET", "30"))
_durations: dict[str, float] = {}
_skipped: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    if report.skipped:
        _skipped[report.nodeid] = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI proves everything it runs: a skip there fails the run (E2E=0 or --deselect leave a test out).
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    over = sorted(((d, n) for n, d in _durations.items() if d > TEST_BUDGET), reverse=True)
    if over:
        terminalreporter.section(f"{len(over)} test(s) over the {TEST_BUDGET:.0f} s budget (setup + call + teardown)")
        for d, n in over:
            terminalreporter.write_line(f"{d:7.1f} s  {n}")
    if os.environ.get("CI") and _skipped:
        terminalreporter.section(f"{len(_skipped)} test(s) skipped in CI: the run fails")
        for n, why in sorted(_skipped.items()):
            terminalreporter.write_line(f"{n}: {why}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("both_clients")
    if "kafka_client" in metafunc.fixturenames and marker is not None:
        # extra=("confluent-classic",) adds librdkafka with the classic group protocol (its default is
        # KIP-848) for the tests that show the difference.
        metafunc.parametrize("kafka_client", [*KAFKA_CLIENTS, *marker.kwargs.get("extra", ())], indirect=True)


def needs_services(item: pytest.Item) -> bool:
    """Whether a test needs Kafka and Redis: ``services`` is among its fixtures (directly or through
    ``settings``, ``client``, ``start_worker``...), or it lives in one of SERVICE_FOLDERS."""
    folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
    return "services" in getattr(item, "fixturenames", ()) or folder in SERVICE_FOLDERS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # make test-fast deselects these (-m "not integration and not browser and not e2e"); browser
    # and e2e tests carry their own marks.
    for item in items:
        if needs_services(item):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _no_services_unless_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test without the ``integration`` mark that starts Kafka or Redis in this process fails at once,
    so the mark cannot silently miss one (make test-fast would start a broker)."""
    if request.node.get_closest_marker("integration") is not None:
        return

    def refuse(self: object) -> None:
        raise AssertionError(f"{request.node.nodeid} starts {type(self).__name__} without the integration "
                             "mark: use the services fixture, or move the test under tests/integration")

    monkeypatch.setattr(KafkaServer, "start", refuse)
    monkeypatch.setattr(RedisServer, "start", refuse)


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
        w = start_worker_process(settings_ or settings, worker_id, tmp_path / f"{worker_id}-{next(started)}.log",
                                 concurrency=concurrency, wait_ready=wait_ready, extra=extra)
        procs.append(w)
        return w

    yield start
    # Graceful stops are tested where they matter; here a worker still busy with a long task after
    # 3 s is killed rather than waited for (a slow task's teardown cost 10 s per test).
    for w in procs:
        if w.proc.poll() is None:
            os.kill(w.proc.pid, 15)
    for w in procs:
        stop_process(w.proc, timeout=3, sig=None)
