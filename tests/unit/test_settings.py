import pytest
from pydantic import ValidationError

from taskq.settings import Settings


def test_settings_come_from_taskq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_PARTITIONS", "24")
    monkeypatch.setenv("TASKQ_TASKS_MODULES", "a.tasks, b.tasks")
    monkeypatch.setenv("TASKQ_PREFIX", "prod")
    s = Settings()
    assert s.partitions == 24 and s.tasks_modules == ["a.tasks", "b.tasks"] and s.prefix == "prod:"


def test_heartbeat_ttl_must_exceed_interval() -> None:
    with pytest.raises(ValidationError, match="heartbeat_ttl"):
        Settings(heartbeat_interval=5, heartbeat_ttl=2)


def test_sasl_options_reach_kafka_clients() -> None:
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile="/ca.crt")
    opts = s.kafka_common()
    assert opts["sasl_plain_password"] == "p" and opts["ssl_cafile"] == "/ca.crt"
    assert "'p'" not in repr(s) and "'p'" not in str(s.model_dump())


def test_a_client_without_arguments_reads_the_taskq_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import taskq

    monkeypatch.setenv("TASKQ_TASKS_TOPIC", "from-env")
    monkeypatch.setenv("TASKQ_KAFKA_CLIENT", "confluent")
    client = taskq.Client()
    assert client.settings.tasks_topic == "from-env" and client.settings.kafka_client == "confluent"
    client.store.close()
    assert set(taskq.__all__) >= {"Client", "TaskqError", "BrokerUnavailable", "TaskNotFound", "Submission"}


def test_kip_848_with_kafka_python_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="needs kafka_client 'confluent'"):
        Settings(kafka_client="kafka-python", group_protocol="consumer")


def test_without_any_setting_the_client_is_librdkafka_with_kip_848(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make dev`, the images and a bare `taskq worker` run when nothing is set."""
    for name in ("TASKQ_KAFKA_CLIENT", "TASKQ_GROUP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.kafka_client == "confluent" and s.consumer_group_protocol == "consumer"
    assert Settings(kafka_client="kafka-python").consumer_group_protocol == "classic"
