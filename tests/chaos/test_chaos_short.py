"""The short chaos run (N=300 in 40 s): kills, a graceful stop, a Kafka and a Redis restart; nothing lost.
``make chaos`` is the long run (10,000 tasks)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.chaos.run import Chaos
from tests.helpers import KAFKA_CLIENTS


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kafka_client", KAFKA_CLIENTS)
def test_nothing_accepted_is_lost_through_kills_and_broker_and_redis_restarts(kafka_client: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="taskq-chaos-"))
    report = Chaos(tasks=300, workers=3, duration=40, root=root, seed=11, kafka_client=kafka_client).run()
    print("\n" + report.render())
    # The faults took place: a run in which no kill caught a task in flight proves nothing.
    # Kills aim at a worker with runs in progress (the graceful stop and the restarts take most of
    # the 40 s, so two is what always fits); each must have caught a task mid-run.
    assert report.kills >= 2 and report.graceful_stops == 1
    assert report.kafka_restarts == 1 and report.redis_restarts == 1
    assert report.duplicate_executions >= 1, "no task was running at any kill: redelivery went unproven"
    assert report.accepted == 300
    assert report.lost == 0 and report.terminal == 300
    assert report.wrong == [] and report.stuck_running == 0
    assert report.unexplained_duplicates == []
    assert report.dead_letters == report.dead_expected
    assert report.workflows and "WRONG" not in report.workflows
