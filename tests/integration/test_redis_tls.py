"""Redis over TLS (rediss://): a task runs end to end with the server's certificate checked against
TASKQ_REDIS_SSL_CAFILE, and a certificate nobody vouched for, or a plain connection to the TLS port,
is refused with one readable error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.client import Client
from taskq.devstack import RedisServer, RedisTls, free_port
from taskq.errors import StoreUnavailable
from taskq.kafka import ensure_topics
from tests.helpers import Services, TlsFiles, WorkerFactory, make_settings, make_tls, run_cli


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, TlsFiles]]:
    folder = tmp_path_factory.mktemp("tls-redis")
    tls = make_tls(folder / "tls")
    server = RedisServer(data_dir=folder / "redis", port=free_port(), tls=RedisTls(tls.cert, tls.key, tls.ca))
    server.start()
    yield server, tls
    server.stop()


def test_a_task_runs_end_to_end_over_tls_with_the_certificate_checked(
    services: Services, tls_redis: tuple[RedisServer, TlsFiles], start_worker: WorkerFactory
) -> None:
    server, tls = tls_redis
    assert server.url.startswith("rediss://")
    settings = make_settings(services, redis_url=server.url, redis_ssl_cafile=str(tls.ca))
    ensure_topics(settings)
    start_worker("w1", settings_=settings)
    with Client(settings) as client:
        tid = client.submit("add", 40, 2)
        assert client.wait(tid, timeout=60).result == 42
    res = run_cli(settings, "status", tid)
    assert res.returncode == 0 and "42" in res.stdout


@pytest.mark.parametrize("case", ["untrusted-certificate", "plain-to-the-tls-port"])
def test_a_redis_that_cannot_be_trusted_is_refused_in_one_line(
    services: Services, tls_redis: tuple[RedisServer, TlsFiles], tmp_path: Path, case: str
) -> None:
    server, _ = tls_redis
    if case == "untrusted-certificate":
        other_ca = make_tls(tmp_path / "other").ca  # a CA that never signed the server's certificate
        settings = make_settings(services, redis_url=server.url, redis_ssl_cafile=str(other_ca))
    else:
        settings = make_settings(services, redis_url=server.url.replace("rediss://", "redis://"))
    with Client(settings) as client, pytest.raises(StoreUnavailable) as refused:
        client.get("0" * 32)
    message = str(refused.value)
    assert "\n" not in message, message
    if case == "untrusted-certificate":
        assert "certificate verify failed" in message, message
    res = run_cli(settings, "status", "0" * 32)
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr
