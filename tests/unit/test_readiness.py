"""/readyz's shared checks: Kafka and Redis asked at most once per max_age, however many callers."""

from __future__ import annotations

import threading
import time

from taskq.api.readiness import Readiness, for_caller


def test_a_check_younger_than_max_age_is_reused_and_an_older_one_redone() -> None:
    now = [100.0]
    calls: list[float] = []

    def check() -> dict[str, str]:
        calls.append(now[0])
        return {"redis": "ok", "kafka": "ok"}

    r = Readiness(check, max_age=2.0, clock=lambda: now[0])
    for _ in range(50):
        assert r.checks() == {"redis": "ok", "kafka": "ok"}
    now[0] = 101.9
    r.checks()
    assert calls == [100.0]
    now[0] = 102.0
    r.checks()
    assert calls == [100.0, 102.0]


def test_callers_arriving_during_a_slow_check_share_its_result() -> None:
    started, release = threading.Event(), threading.Event()
    calls = []

    def check() -> dict[str, str]:
        calls.append(1)
        started.set()
        release.wait(5)
        return {"redis": "ok", "kafka": "Kafka is unreachable: 10.0.0.7:9092"}

    r = Readiness(check, max_age=60.0)
    results: list[dict[str, str]] = []
    threads = [threading.Thread(target=lambda: results.append(r.checks())) for _ in range(20)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    time.sleep(0.05)  # let the others queue behind the running check (the assertion holds either way)
    release.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and len(results) == 20
    assert all(res["kafka"].startswith("Kafka is unreachable") for res in results)


def test_only_a_caller_with_a_token_sees_why_a_check_failed() -> None:
    checks = {"redis": "ok", "kafka": "Kafka is unreachable: kafka-0.kafka.prod.svc:9092 refused"}
    assert for_caller(checks, authenticated=True) == checks
    assert for_caller(checks, authenticated=False) == {"redis": "ok", "kafka": "unavailable"}
