"""Past its in-flight limit the API refuses fast (503 + Retry-After) and a refusal leaves nothing."""

from __future__ import annotations

import asyncio
import re

import httpx

from taskq.errors import BrokerError
from taskq.kafka import consumer_lag
from taskq.store import Store
from tests.helpers import ApiServer, Services, make_settings, wait_for

N = 300


def test_submits_past_the_inflight_limit_get_503_with_retry_after_and_leave_nothing_behind(
    services: Services,
) -> None:
    settings = make_settings(services, api_max_inflight=2)
    api = ApiServer(settings)
    store = Store(settings)
    try:
        async def burst() -> list[httpx.Response]:
            # Idle connections expire before uvicorn's 5 s keep-alive timeout: a connection the server
            # closes just as the client reuses it for a POST is a ReadError (seen once under load in CI).
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)
            async with httpx.AsyncClient(base_url=api.url, limits=limits, timeout=30) as c:
                return await asyncio.gather(*[c.post("/api/tasks", json={"task": "add", "args": [i, 1]})
                                              for i in range(N)])

        responses = asyncio.run(burst())
        accepted = {r.json()["id"]: i for i, r in enumerate(responses) if r.status_code == 202}
        refused = [r for r in responses if r.status_code == 503]
        assert len(accepted) + len(refused) == N, {r.status_code for r in responses}
        assert accepted and refused  # 64 clients against a limit of 2: both happen
        assert all(r.headers["retry-after"] == "1" and "limit of 2" in r.json()["detail"] for r in refused)
        # Every accepted task is real: recorded with the arguments it was sent with, and in Kafka.
        for tid, i in accepted.items():
            rec = store.get(tid)
            assert rec.args == [i, 1]
        assert store.counts()["queued"] == len(accepted)  # the refused ones left no record
        def in_kafka() -> int:
            try:
                return sum(consumer_lag(settings).values())
            except BrokerError:  # the group has no coordinator until it is first looked up
                return -1

        wait_for(lambda: in_kafka() == len(accepted), timeout=30, what="Kafka to hold exactly the accepted messages")
        text = api.http.get("/metrics").text
        refused_metric = re.search(r"^taskq_api_submissions_refused_total (\S+)$", text, re.M)
        assert refused_metric is not None and float(refused_metric.group(1)) == len(refused)
    finally:
        store.close()
        api.close()
