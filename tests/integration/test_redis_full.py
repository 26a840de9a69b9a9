"""Redis out of memory (maxmemory, noeviction): submissions fail with a clear 503 and nothing is half-written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from taskq.client import Client
from taskq.devstack import RedisServer, free_port
from taskq.errors import StoreUnavailable
from taskq.settings import Settings
from taskq.store import MEMORY_CHECK_SECONDS
from tests.helpers import ApiServer, Services, make_settings, wait_for


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path / "redis", port=free_port())
    server.start()
    yield server
    server.stop()


def _produced(settings: Settings) -> int:
    """Messages on the tasks topic (end offsets summed over partitions)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(settings.tasks_topic, p) for p in range(settings.partitions)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def _fill(r: redis.Redis) -> int:
    """Write filler keys until Redis refuses one; returns how many it took."""
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 512 * 1024)
    n = 0
    while True:
        try:
            r.set(f"filler:{n}", "x" * 4096)
        except redis.exceptions.OutOfMemoryError:
            return n
        n += 1


def test_a_full_redis_refuses_submits_with_503_and_kafka_gets_nothing_until_there_is_room(
    services: Services, small_redis: RedisServer
) -> None:
    settings = make_settings(services, redis_url=small_redis.url)
    api = ApiServer(settings)
    r = redis.Redis.from_url(small_redis.url)
    client = Client(settings)
    try:
        assert _produced(settings) == 0
        filled = _fill(r)
        assert filled > 0
        wait_for(lambda: api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]}).status_code == 503,
                 timeout=MEMORY_CHECK_SECONDS * 5, what="the API to see Redis full")
        resp = api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]})
        assert resp.status_code == 503 and "Redis is out of memory" in resp.json()["detail"]
        batch = api.http.post("/api/tasks/batch", json=[{"task": "add", "args": [i, 1]} for i in range(5)])
        assert batch.status_code == 503
        with pytest.raises(StoreUnavailable, match="out of memory"):
            client.submit("add", 1, 2)
        assert _produced(settings) == 0  # nothing reached Kafka
        assert r.keys(settings.prefix + "task:*") == []  # and nothing half-written in Redis
        # Room again: submissions are accepted and recorded.
        r.delete(*[f"filler:{i}" for i in range(filled)])
        wait_for(lambda: api.http.post("/api/tasks", json={"task": "add", "args": [2, 2]}).status_code == 202,
                 timeout=MEMORY_CHECK_SECONDS * 5, what="the API to accept again")
        tid = client.submit("add", 3, 3)
        assert client.get(tid).status.value == "queued"
    finally:
        client.close()
        api.close()
        r.close()


def test_the_charts_redis_settings_make_a_full_redis_refuse_submits_with_503(
    services: Services, tmp_path: Path
) -> None:
    """The chart's redis-additional.conf as rendered (a small maxmemory, noeviction): Redis fills up
    and the API answers 503 instead of Redis being OOM-killed or dropping records."""
    from tests.chart.helm import docs, find

    objs = docs("--set", "redis.operator.maxmemory=4mb")
    conf = find(objs, "ConfigMap", "rel-taskq-redis-config")["data"]["redis-additional.conf"]
    server = RedisServer(data_dir=tmp_path / "redis", port=free_port(), extra_config=conf)
    server.start()
    settings = make_settings(services, redis_url=server.url)
    api = ApiServer(settings)
    r = redis.Redis.from_url(server.url)
    try:
        assert r.config_get("maxmemory") == {"maxmemory": str(4 * 2**20)}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        n = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            while n < 10_000:
                r.set(f"filler:{n}", "x" * 4096)
                n += 1
        wait_for(lambda: api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]}).status_code == 503,
                 timeout=MEMORY_CHECK_SECONDS * 5, what="the API to see Redis full")
        assert "Redis is out of memory" in api.http.post("/api/tasks", json={"task": "add"}).json()["detail"]
        assert _produced(settings) == 0
    finally:
        api.close()
        server.stop()
