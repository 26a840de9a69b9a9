"""The local services the dev stack and the tests run on."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from taskq.devstack import KafkaServer, free_port


def test_kafka_formats_and_starts_even_when_the_cluster_id_starts_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # base64url of a first byte 0xF8 starts with "-": once read as an option by the storage tool.
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(bytes=bytes([0xF8]) + bytes(15)))
    kafka = KafkaServer(data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    kafka.start()
    try:
        assert (tmp_path / "kafka" / "logs" / "meta.properties").exists()
    finally:
        kafka.stop()
