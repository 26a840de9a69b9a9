"""Kafka with SCRAM-SHA-512 over TLS and ACLs, as the chart's Strimzi Kafka and most managed Kafkas
run it: both clients run a task end to end with a user's credentials, and a client without them,
with a wrong password, or without ACLs is refused with one readable error, never a hang."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from taskq.client import Client
from taskq.devstack import KafkaServer, SecureListener, free_port
from taskq.errors import BrokerError
from taskq.kafka import ensure_topics
from taskq.settings import Settings
from tests.helpers import KAFKA_CLIENTS, Services, WorkerFactory, make_settings, make_tls, run_cli

USER, INTRUDER = "taskq-app", "intruder"


@dataclass(frozen=True)
class SecureKafka:
    server: KafkaServer
    ca: Path
    passwords: dict[str, str]

    @property
    def bootstrap(self) -> str:
        assert self.server.secure is not None
        return f"127.0.0.1:{self.server.secure.port}"


def _grant(bootstrap: str, user: str, prefix: str) -> None:
    """What the chart's KafkaUser grants a component: its topics and group (by prefix), idempotent writes."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourceType,
    )

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])  # the plain listener's super user
    try:
        acls = [ACL(f"User:{user}", "*", ACLOperation.ALL, ACLPermissionType.ALLOW,
                    ResourcePattern(kind, prefix, ACLResourcePatternType.PREFIXED))
                for kind in (ResourceType.TOPIC, ResourceType.GROUP)]
        acls.append(ACL(f"User:{user}", "*", ACLOperation.IDEMPOTENT_WRITE, ACLPermissionType.ALLOW,
                        ResourcePattern(ResourceType.CLUSTER, "kafka-cluster", ACLResourcePatternType.LITERAL)))
        result = admin.create_acls(acls)
        assert not result["failed"], result
    finally:
        admin.close()


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    tls = make_tls(folder / "tls")
    ca, keystore, keystore_password = tls.ca, tls.p12, tls.p12_password
    passwords = {USER: secrets.token_hex(12), INTRUDER: secrets.token_hex(12)}
    server = KafkaServer(data_dir=folder / "kafka", port=free_port(), controller_port=free_port(),
                         secure=SecureListener(port=free_port(), keystore=keystore,
                                               keystore_password=keystore_password, users=passwords))
    server.start()
    try:
        _grant(server.bootstrap, USER, "sec-")
        kafka = SecureKafka(server, ca, passwords)
        _wait_until_the_secure_listener_signs_in(kafka)
        yield kafka
    finally:
        server.stop()


def _wait_until_the_secure_listener_signs_in(kafka: SecureKafka) -> None:
    """The broker is ready on its plain listener before the SASL_SSL one signs users in: the tests
    start once a granted user lists topics over it (a refusal seen before that is not the test's)."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + 60
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=[kafka.bootstrap], security_protocol="SASL_SSL",
                                     sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=USER,
                                     sasl_plain_password=kafka.passwords[USER], ssl_cafile=str(kafka.ca),
                                     request_timeout_ms=5000, bootstrap_timeout_ms=5000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _settings(services: Services, kafka: SecureKafka, client: str, **overrides: object) -> Settings:
    uid = secrets.token_hex(5)
    base: dict[str, object] = {
        "kafka_bootstrap": kafka.bootstrap, "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": USER,
        "kafka_sasl_password": kafka.passwords[USER], "kafka_ssl_cafile": str(kafka.ca),
        "tasks_topic": f"sec-tasks-{uid}", "dead_topic": f"sec-dead-{uid}", "group_id": f"sec-workers-{uid}",
        "kafka_client": client,
    }
    base.update(overrides)
    return make_settings(services, **base)


@pytest.mark.parametrize("kafka_client", KAFKA_CLIENTS)
def test_a_task_runs_end_to_end_with_scram_credentials_over_tls(
    services: Services, secure_kafka: SecureKafka, start_worker: WorkerFactory, kafka_client: str
) -> None:
    settings = _settings(services, secure_kafka, kafka_client)
    ensure_topics(settings)
    start_worker("w1", settings_=settings)
    with Client(settings) as client:
        tid = client.submit("add", 20, 22)
        assert client.wait(tid, timeout=60).result == 42
        assert client.lag() is not None  # the admin side (lag) works over SASL_SSL too


@pytest.mark.parametrize("kafka_client", KAFKA_CLIENTS)
@pytest.mark.parametrize("who", ["wrong-password", "no-credentials", "no-acls"])
def test_a_client_without_valid_credentials_or_acls_is_refused_in_one_line(
    services: Services, secure_kafka: SecureKafka, kafka_client: str, who: str
) -> None:
    good = _settings(services, secure_kafka, kafka_client)
    ensure_topics(good)  # the topics exist: what is refused is the caller, not a missing topic
    changes: dict[str, dict[str, Any]] = {
        "wrong-password": {"kafka_sasl_password": SecretStr("not-the-password")},
        "no-credentials": {"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": None,
                           "kafka_sasl_username": None, "kafka_sasl_password": None},
        "no-acls": {"kafka_sasl_username": INTRUDER,
                    "kafka_sasl_password": SecretStr(secure_kafka.passwords[INTRUDER])},
    }
    # Long enough for a TLS handshake and a SCRAM exchange on a busy machine: the refusal must have
    # been seen before the timeout for the message to name it.
    bad = good.model_copy(update={**changes[who], "submit_timeout": 10 if who == "wrong-password" else 5})
    with Client(bad) as client, pytest.raises(BrokerError) as refused:
        client.submit("add", 1, 2)
    message = str(refused.value)
    assert "\n" not in message and len(message) < 800, message
    # Each says what is wrong, not merely that Kafka did not answer.
    assert {"wrong-password": "Kafka refused this client", "no-credentials": "did not answer",
            "no-acls": "uthorization"}[who] in message, message
    if who == "wrong-password":
        assert "invalid credentials" in message.lower() or "authentication" in message.lower(), message
    if who == "wrong-password" and kafka_client == "confluent":
        # The admin side (topics, lag) says so too: librdkafka reports the refusal to the admin
        # client's callback, served before the timeout is explained. (kafka-python's admin shares
        # the producer's explanation; on a machine loaded past CI's own load its TLS attempts can
        # all time out before one reaches SASL, and then there is no refusal to name.)
        with pytest.raises(BrokerError, match="Kafka refused this client"):
            ensure_topics(bad, timeout=10)
    # The same through the CLI: an exit code and one line on stderr.
    res = run_cli(bad, "submit", "add", "1", "2")
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
