"""Flow-control definitions refuse bad input at decoration and submit time; the priority pick order."""

from __future__ import annotations

import pytest

from taskq import ConfigError, task
from taskq.limits import parse_rate, traceparent_problem
from taskq.models import TaskMessage
from taskq.registry import Registry
from taskq.settings import Settings
from taskq.worker import Worker
from taskq.worker.runner import PRIORITY_SHARE, _Item


@pytest.mark.parametrize(("text", "rate"), [("100/s", (100, 1)), ("10/m", (10, 60)), ("5/10s", (5, 10)),
                                            ("1/h", (1, 3600)), (" 2.5 / 1 sec ", (2.5, 1))])
def test_rates_read_as_tasks_per_period(text: str, rate: tuple[float, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["100/x", "100", "/s", "0/s", "-1/s", "ten/s", "5/0s", 100])
def test_a_malformed_rate_limit_is_refused_when_the_task_is_defined(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"@task\('t'\): rate_limit"):
        task(name="t", rate_limit=bad)(lambda: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 10**9])
def test_a_bad_concurrency_is_refused_when_the_task_is_defined(bad: object) -> None:
    with pytest.raises(ConfigError, match="concurrency must be an integer"):
        task(name="t", concurrency=bad)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="key_concurrency must be an integer"):
        task(name="t", key_concurrency=bad)(lambda: None)  # type: ignore[arg-type]


def test_limits_are_advertised_with_the_task_type() -> None:
    def f() -> None: ...

    reg = Registry([task(name="t", rate_limit="5/s", concurrency=3, key_concurrency=1)(f).__taskq_task__])  # type: ignore[attr-defined]
    described = reg.describe()["t"]
    assert (described.rate_limit, described.concurrency, described.key_concurrency) == ("5/s", 3, 1)
    assert reg.get("t").limit_args == ("5.0", "1.0", "", "", "3", "1")


def test_an_unknown_priority_on_the_wire_is_refused() -> None:
    from taskq.errors import InvalidMessage

    raw = TaskMessage(id="a" * 32, task="add").to_bytes().replace(b'"v":1', b'"v":1,"priority":"urgent"')
    with pytest.raises(InvalidMessage, match="priority 'urgent' is unknown"):
        TaskMessage.from_bytes(raw)
    trace = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    msg = TaskMessage(id="a" * 32, task="add", priority="high", rate_key="acme", trace=trace)
    back = TaskMessage.from_bytes(msg.to_bytes())
    assert (back.priority, back.rate_key, back.trace) == ("high", "acme", None)  # the trace rides in the headers
    assert msg.headers() == [("traceparent", msg.trace.encode())]  # type: ignore[union-attr]


def test_a_traceparent_must_be_w3c() -> None:
    assert traceparent_problem("00-" + "a" * 32 + "-" + "b" * 16 + "-01") is None
    for bad in ("", "00-" + "0" * 32 + "-" + "b" * 16 + "-01", "xx", "00-" + "A" * 32 + "-" + "b" * 16 + "-01"):
        assert traceparent_problem(bad) is not None


def test_the_most_urgent_lane_starts_first_and_lower_lanes_still_get_a_share() -> None:
    worker = Worker(Settings(priority_lanes=True), worker_id="w1", registry=Registry.load([]))
    high, normal, low = worker._lanes
    items = [_Item(lane, 0, i, 1, TaskMessage(id=f"{lane.priority}{i}", task="add"))
             for lane in (low, normal, high) for i in range(20)]
    picked = worker._pick(items, 10)
    ranks = [i.lane.rank for i in picked]
    assert ranks.count(0) == 10 - 10 // PRIORITY_SHARE  # high first, in arrival order ...
    assert [i.msg.id for i in picked if i.lane is high] == [f"high{i}" for i in range(ranks.count(0))]
    assert 1 in ranks or 2 in ranks  # ... and every PRIORITY_SHARE-th start went to a waiting lower lane
    more = worker._pick([i for i in items if i not in picked], 30)
    assert {i.lane.rank for i in more} == {0, 1, 2}  # the share rotates over the lower lanes
    only_normal = [i for i in items if i.lane is normal]
    assert worker._pick(only_normal, 5) == only_normal[:5]
