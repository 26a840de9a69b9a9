"""What the tests share besides fixtures: settings for the session's services, waiting, the API server.

Test modules import these from here; ``tests/conftest.py`` holds the fixtures and pytest hooks and
builds them from the same helpers.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from taskq.api.app import create_app
from taskq.client import Client
from taskq.devstack import KafkaServer, RedisServer, free_port, spawn, stop_process
from taskq.kafka import ensure_topics
from taskq.settings import Settings

# The delivery-semantics tests (modules marked ``both_clients``) run once per Kafka client; the rest
# use TASKQ_TEST_KAFKA_CLIENT, so the whole suite can be run with either. Its default is librdkafka,
# the client the README recommends: a worker on it spends a sixth of kafka-python's CPU while idle
# (0.18 against 1.03 CPU-seconds per 10 s, measured), which the suite's two cores feel.
KAFKA_CLIENTS = ("kafka-python", "confluent")
DEFAULT_KAFKA_CLIENT = os.environ.get("TASKQ_TEST_KAFKA_CLIENT", "confluent")


def client_settings(kafka_client: str) -> dict[str, object]:
    """Settings overrides for a test's Kafka client name (``confluent-classic``: the classic protocol)."""
    if kafka_client == "confluent-classic":
        return {"kafka_client": "confluent", "group_protocol": "classic"}
    return {"kafka_client": kafka_client}


@dataclass
class Services:
    kafka: KafkaServer
    redis: RedisServer


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


def start_worker_process(settings: Settings, worker_id: str, log: Path, *, concurrency: int = 4,
                         wait_ready: bool = True, extra: list[str] | None = None) -> WorkerProc:
    """Start ``taskq worker`` with ``settings``; its output goes to ``log``. Ready means it joined."""
    with open(log, "wb") as fh:
        proc = spawn([sys.executable, "-m", "taskq", "worker", "--id", worker_id, "--concurrency",
                      str(concurrency), *(extra or [])], env=settings_env(settings), stdout=fh)
    w = WorkerProc(worker_id, proc, log, settings)
    if wait_ready:
        # A join kafka-python dropped is re-done by the worker's JoinGuard within seconds; no retry here,
        # so a worker that never joins fails the test.
        wait_for(lambda: "partitions assigned" in w.output() or proc.poll() is not None, timeout=30,
                 what=f"{worker_id} to join the group")
        assert proc.poll() is None, w.output()
    return w


def keys_on(partitions: Iterable[int], total: int, n: int) -> list[str]:
    """``n`` task keys that land on ``partitions`` (of ``total``): both clients hash keys with the Java
    client's murmur2 (test_kafka_seam proves it), so a test can aim tasks at one worker's partitions."""
    from kafka.partitioner.default import murmur2

    wanted, keys = set(partitions), []
    for i in itertools.count():
        key = f"aim-{i}"
        if (murmur2(key.encode()) & 0x7FFFFFFF) % total in wanted:
            keys.append(key)
            if len(keys) == n:
                return keys
    raise AssertionError("itertools.count() ended")


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

    def __init__(self, settings: Settings, *, topics: bool = True, port: int | None = None) -> None:
        if topics:
            ensure_topics(settings)
        self.port = port or free_port()  # a port of its own, or the one of a server it replaces
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20, what="the API server")
        self.url = f"http://127.0.0.1:{self.port}"
        # Idle connections expire before uvicorn's 5 s keep-alive timeout closes them under our feet.
        self.http = httpx.Client(base_url=self.url, timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``taskq <args>`` in a subprocess with ``settings`` as its TASKQ_* environment."""
    return subprocess.run([sys.executable, "-m", "taskq", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=60)


@dataclass(frozen=True)
class TlsFiles:
    """A test CA and a server key and certificate for 127.0.0.1 signed by it (PEM, and PKCS12 for Java)."""

    ca: Path
    cert: Path
    key: Path
    p12: Path
    p12_password: str


def make_tls(folder: Path) -> TlsFiles:
    """Make a CA and a server certificate for 127.0.0.1/localhost with openssl."""
    import secrets as _secrets

    folder.mkdir(parents=True, exist_ok=True)
    password = _secrets.token_hex(8)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=taskq-test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    openssl("pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-certfile", "ca.pem",
            "-out", "server.p12", "-passout", f"pass:{password}", "-name", "server")
    return TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "server.p12", password)
