"""Local services for development and tests: a real Kafka broker (KRaft) and Redis.

Processes started here are ours: we keep their PIDs, stop them by PID, and ask
the kernel to SIGTERM them if we die (PR_SET_PDEATHSIG), so nothing is orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import ConfigError, TaskqError

KAFKA_VERSION = "4.3.1"
PR_SET_PDEATHSIG = 1


def default_cache_dir() -> Path:
    """``TASKQ_CACHE`` (the Makefile's CACHE), else ``$XDG_CACHE_HOME/taskq`` or ``~/.cache/taskq``."""
    if cache := os.environ.get("TASKQ_CACHE"):
        return Path(cache)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskq"


def default_kafka_jars() -> Path:
    return Path(os.environ.get("TASKQ_KAFKA_JARS", default_cache_dir() / f"kafka-{KAFKA_VERSION}" / "jars"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None, stdout: IO[bytes] | int | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child in its own session (terminal Ctrl-C reaches only us) that dies with us.

    The kernel's parent-death signal fires when the spawning *thread* exits: spawn from a
    thread that lives as long as the child should.
    """
    return subprocess.Popen(
        list(argv), env=env, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT if stdout is not None else None,
        stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
    )


def stop_process(
    proc: subprocess.Popen[bytes], *, timeout: float = 20.0, sig: int | None = signal.SIGTERM
) -> int | None:
    """Signal one process we started (by PID; ``sig=None``: already signalled), wait, SIGKILL if it lingers."""
    if proc.poll() is None and sig is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
    if proc.poll() is None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise TaskqError(f"{what} exited with code {proc.returncode} while starting\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet, whatever the reason
            pass
        time.sleep(0.2)
    raise TaskqError(f"{what} did not become ready within {timeout:.0f}s" + (f" (log: {log})" if log else ""))


@dataclass(frozen=True)
class SecureListener:
    """A SASL_SSL listener beside the plain one: SCRAM-SHA-512 users over TLS, with ACLs enforced.

    ``keystore`` is a PKCS12 file holding the broker's key and certificate (for 127.0.0.1),
    ``users`` maps user names to passwords (their SCRAM credentials are written at format time).
    The plain listener's anonymous user stays a super user, so tools and ACL set-up keep working."""

    port: int
    keystore: Path
    keystore_password: str
    users: dict[str, str]


class KafkaServer:
    """A single-node KRaft Kafka broker run from Maven jars."""

    def __init__(self, *, data_dir: Path, port: int, controller_port: int, jars: Path | None = None,
                 heap: str = "512m", quick_start: bool = True, group_session_seconds: float = 6.0,
                 secure: SecureListener | None = None) -> None:
        self.secure = secure
        self.jars = jars or default_kafka_jars()
        # KIP-848 groups' session timeout, kept by the broker (TASKQ_SESSION_TIMEOUT's default).
        self.group_session_ms = int(group_session_seconds * 1000)
        self.data_dir = data_dir
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        # Quick start (C1 JIT only) halves start-up for tests and `make dev`; benchmarks want full JIT.
        self.quick_start = quick_start
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "kafka.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self) -> str:
        java = shutil.which("java")
        if not java:
            raise ConfigError("java not found: Kafka needs Java 17+ (apt-get install openjdk-17-jre-headless)")
        return java

    def _check_jars(self) -> None:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise ConfigError(f"Kafka jars not found in {self.jars}: run 'make kafka' (fetches them from Maven)")

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        c = self.controller_port
        listeners = f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{c}"
        secure: list[str] = []
        if self.secure is not None:
            listeners += f",SASL_SSL://127.0.0.1:{self.secure.port}"
            secure = [
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                f"ssl.keystore.location={self.secure.keystore}",
                f"ssl.keystore.password={self.secure.keystore_password}",
                "ssl.keystore.type=PKCS12",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:ANONYMOUS",
                "allow.everyone.if.no.acl.found=false",
            ]
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{c}",
            f"listeners={listeners}",
            f"advertised.listeners={listeners}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            *secure,
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
            # KIP-848 groups (group.protocol=consumer) time sessions out on the broker: 45 s by default,
            # and no lower than that; taskq's workers want a dead member's partitions moved in seconds.
            "group.consumer.min.session.timeout.ms=1000",
            f"group.consumer.session.timeout.ms={self.group_session_ms}",
            "group.consumer.min.heartbeat.interval.ms=500",
            "group.consumer.heartbeat.interval.ms=1000",
            "log.retention.hours=168",
            "",
        ]))
        (self.data_dir / "log4j2.properties").write_text("\n".join([
            "rootLogger.level=WARN",
            "rootLogger.appenderRef.stdout.ref=STDOUT",
            "appender.stdout.type=Console",
            "appender.stdout.name=STDOUT",
            "appender.stdout.layout.type=PatternLayout",
            "appender.stdout.layout.pattern=[%d] %p %m (%c)%n",
            "logger.kafka.name=kafka.server.KafkaServer",
            "logger.kafka.level=INFO",
            "logger.broker.name=kafka.server.BrokerServer",
            "logger.broker.level=INFO",
            "",
        ]))
        return props

    def start(self, *, timeout: float = 90.0) -> None:
        java = self._java()
        self._check_jars()
        props = self._write_config()
        cp = f"{self.jars}/*"
        # Quick start: C1 JIT only and the serial GC (fast to start, small). Otherwise the full JIT and
        # G1 with a short pause goal: serial young collections stalled every client for 20-40 ms.
        tuning = (["-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"] if self.quick_start
                  else [f"-Xms{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=5", "-XX:+AlwaysPreTouch"])
        jvm = [java, f"-Xmx{self.heap}", *tuning,
               f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}", "-cp", cp]
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = uuid.uuid4().bytes
            import base64

            cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
            fmt = subprocess.run(
                # "--cluster-id=" form: a random id may start with "-" and look like an option.
                [*jvm, "kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cid}", "-c", str(props),
                 "--ignore-formatted", *self._scram_credentials()],
                capture_output=True, text=True, timeout=120,
            )
            if fmt.returncode != 0:
                last = (fmt.stderr.strip() or fmt.stdout.strip() or "no output").splitlines()[-1]
                raise TaskqError(f"formatting Kafka storage failed: {last}\n{fmt.stdout}\n{fmt.stderr}")
        for port in (self.port, self.controller_port, *([self.secure.port] if self.secure else [])):
            if port_in_use(port):
                raise ConfigError(f"port {port} is already in use: is another Kafka running? Pick another port")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = spawn([*jvm, "kafka.Kafka", str(props)], stdout=log)
        (self.data_dir / "kafka.pid").write_text(str(self.proc.pid))
        wait_until(self._ready, timeout=timeout, what="Kafka", proc=self.proc, log=self.log_path)

    def _scram_credentials(self) -> list[str]:
        out: list[str] = []
        for name, password in (self.secure.users.items() if self.secure else ()):
            out += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return out

    def _ready(self) -> bool:
        from ..kafka import broker_answers

        return broker_answers(self.bootstrap, timeout=3.0)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30, sig=signal.SIGKILL if kill else signal.SIGTERM)
            (self.data_dir / "kafka.pid").unlink(missing_ok=True)


@dataclass(frozen=True)
class RedisTls:
    """PEM files for a TLS-only Redis: its certificate and key, and the CA clients are told to trust."""

    cert: Path
    key: Path
    ca: Path


class RedisServer:
    """Debian's redis-server on a port of ours, with AOF so results survive a restart."""

    def __init__(self, *, data_dir: Path, port: int, extra_config: str = "", tls: RedisTls | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.tls = tls
        # redis.conf lines read before the command line's (e.g. the chart's redis-additional.conf).
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        # TLS only: the plain port is closed, clients need no certificate of their own.
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca),
                "--tls-auth-clients", "no"]

    def start(self, *, timeout: float = 20.0) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise ConfigError("redis-server not found: apt-get install redis-server (or run 'make deps')")
        if port_in_use(self.port):
            raise ConfigError(f"port {self.port} is already in use: is another Redis running? Pick another port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "extra.conf"
        conf.write_text(self.extra_config)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = spawn(
            [exe, str(conf), *self._listen_args(), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
             "--protected-mode", "yes"],
            stdout=log,
        )
        (self.data_dir / "redis.pid").write_text(str(self.proc.pid))
        wait_until(self._ready, timeout=timeout, what="Redis", proc=self.proc, log=self.log_path)

    def _ready(self) -> bool:
        import redis

        if self.tls is not None:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1, ssl=True,
                                    ssl_ca_certs=str(self.tls.ca)).ping())
        return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15, sig=signal.SIGKILL if kill else signal.SIGTERM)
            (self.data_dir / "redis.pid").unlink(missing_ok=True)


def python_argv(*args: str) -> list[str]:
    """Run taskq's CLI with the current interpreter (works from a venv without activation)."""
    return [sys.executable, "-m", "taskq", *args]
