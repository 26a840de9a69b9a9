"""librdkafka's admin calls answer through futures: one Kafka never completes in time is a
BrokerUnavailable (the API's 503, the CLI's one line), never a bare TimeoutError (a 500 on /metrics)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from taskq.errors import BrokerUnavailable
from taskq.kafka.confluent import Admin
from taskq.settings import Settings


class _Silent:
    """An AdminClient whose requests were sent and never answered."""

    def list_consumer_group_offsets(self, groups: list[Any], **_: Any) -> dict[str, Future[Any]]:
        return {g.group_id: Future() for g in groups}

    def list_offsets(self, offsets: dict[Any, Any], **_: Any) -> dict[Any, Future[Any]]:
        return {tp: Future() for tp in offsets}

    def poll(self, _: float) -> int:
        return 0


def test_a_lag_read_kafka_never_answers_is_broker_unavailable_not_a_timeout_error() -> None:
    # Nothing listens on port 9 of loopback: the client is made, never used.
    admin = Admin(Settings(kafka_bootstrap="127.0.0.1:9", kafka_client="confluent"), timeout=0.05)
    admin._a = _Silent()  # type: ignore[assignment]
    with pytest.raises(BrokerUnavailable, match="did not answer in time while trying to read consumer lag"):
        admin.lag()
