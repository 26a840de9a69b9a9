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
