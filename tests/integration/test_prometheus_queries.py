"""Every query of the chart's Grafana dashboard, and the chart's alert rules, evaluated by a real
Prometheus (Debian's) that scraped real workers and two API replicas through successes, failures,
retries, dead letters and a SIGKILLed worker."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskq.devstack import free_port
from taskq.devstack.prometheus import PrometheusServer, alert_names, chart_rules
from taskq.settings import Settings
from tests.chart.helm import tool
from tests.helpers import ApiServer, WorkerFactory, WorkerProc, wait_for
from tests.prometheus.support import (
    GRAFANA_BUILTINS,
    PanelQuery,
    PromApi,
    load_dashboard,
    need,
    panel_queries,
    regex_value,
    substitute,
    variable_query,
)

NAMESPACE = "taskq-test"
SCRAPE = 1.0
CONCURRENCY = 4
# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval), the scrape
# interval being the data source's setting (here Prometheus' own, 1 s); $__interval is the panel's
# step, which at a short range is the scrape interval too.
GRAFANA = {"__interval": f"{SCRAPE:g}s", "__rate_interval": f"{max(2 * SCRAPE, 4 * SCRAPE):g}s"}
# Queries that cannot return data in this setup, each with why. None today: the workers create
# their per-task series at 0 on a task's first run and the API exports every error counter at 0,
# so even the counters of events that did not happen answer.
EMPTY_HERE: dict[str, str] = {}
# The mix the load keeps submitting (per batch): successes, short sleeps (in flight, run time),
# failures without retries (failed) and with one (retried, then dead: a dead letter).
BATCH = [*[{"task": "add", "args": [1, 2]}] * 3, *[{"task": "sleep", "args": [0.2]}] * 2,
         {"task": "fail", "args": ["on purpose"], "max_retries": 0},
         {"task": "fail", "args": ["again"], "max_retries": 1}]

pytestmark = pytest.mark.timeout(420)


class Load:
    """Keeps submitting BATCH through the API replicas in turn (so each counts submissions) until stopped."""

    def __init__(self, urls: list[str], *, every: float = 0.25) -> None:
        self.urls, self.every = urls, every
        self.stop = threading.Event()
        self.submitted = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self.stop.wait(self.every):
                r = http.post(f"{self.urls[n % len(self.urls)]}/api/tasks/batch", json=BATCH)
                n += 1
                if r.status_code == 202:
                    self.submitted += len(BATCH)
                else:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def apis(settings: Settings) -> Iterator[list[ApiServer]]:
    """Two API replicas, as the chart runs by default: each reports the cluster gauges."""
    servers = [ApiServer(settings), ApiServer(settings, topics=False)]
    yield servers
    for s in servers:
        s.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    binary = need("prometheus")
    server = PrometheusServer(data_dir=tmp_path / "prometheus", port=free_port(), scrape_interval=SCRAPE,
                              rules=chart_rules(helm=tool("helm")), labels={"namespace": NAMESPACE}, binary=binary)
    yield server
    server.stop()


def _up(prom: PromApi, job: str) -> set[str]:
    return {s["metric"]["instance"] for s in prom.query(f'up{{job="{job}"}} == 1')}


def _finite(result: list[dict[str, Any]]) -> bool:
    return all(math.isfinite(float(s["value"][1])) for s in result)


def test_every_dashboard_query_answers_with_the_labels_its_panel_shows_and_the_chart_alerts_evaluate(
    settings: Settings, start_worker: WorkerFactory, apis: list[ApiServer], prometheus: PrometheusServer,
) -> None:
    prometheus.set_targets("taskq-api", [f"127.0.0.1:{a.port}" for a in apis])
    prometheus.start()
    prom = PromApi(prometheus.url)
    ports = {f"w{i}": free_port() for i in range(1, 5)}
    workers: dict[str, WorkerProc] = {}

    def start(wid: str) -> None:
        workers[wid] = start_worker(wid, concurrency=CONCURRENCY, extra=["--metrics-port", str(ports[wid])])
        live = [w for w in workers if workers[w].proc.poll() is None]
        prometheus.set_targets("taskq-workers", [f"127.0.0.1:{ports[w]}" for w in live])

    ns = f'namespace="{NAMESPACE}"'

    try:
        for wid in ("w1", "w2", "w3"):
            start(wid)
        wait_for(lambda: len(_up(prom, "taskq-api")) == 2 and len(_up(prom, "taskq-workers")) == 3, timeout=30,
                 what="Prometheus to scrape both API replicas and three workers", interval=0.5)
        with Load([a.url for a in apis]) as load:
            # A burst of 3 s tasks fills every slot; w3 is killed while it runs some of them.
            with httpx.Client(timeout=30) as http:
                r = http.post(f"{apis[0].url}/api/tasks/batch", json=[{"task": "sleep", "args": [3]}] * 16)
                assert r.status_code == 202, r.text
            wait_for(lambda: (prom.value(f'taskq_worker_tasks_in_flight{{{ns},worker="w3"}}') or 0) > 0,
                     timeout=20, what="Prometheus to see w3 running tasks", interval=0.2)
            workers["w3"].kill()
            prometheus.set_targets("taskq-workers", [f"127.0.0.1:{ports[w]}" for w in ("w1", "w2")])
            start("w4")
            live = {f"127.0.0.1:{ports[w]}" for w in ("w1", "w2", "w4")}
            # The target files are followed: w3 is no longer scraped, its replacement is.
            wait_for(lambda: _up(prom, "taskq-workers") == live, timeout=20,
                     what="Prometheus to follow the killed worker's replacement", interval=0.5)
            wait_for(lambda: (prom.value(f"sum(taskq_tasks_redelivered_total{{{ns}}})") or 0) > 0, timeout=60,
                     what="the survivors' redeliveries of w3's tasks to be scraped", interval=0.5)
            wait_for(lambda: prom.value(f'max(taskq_workers{{{ns},status="lost"}})') == 1, timeout=30,
                     what="the API to report w3 lost", interval=0.5)
            wait_for(lambda: (prom.value(f"sum(taskq_tasks_dead_lettered_total{{{ns}}})") or 0) > 0, timeout=30,
                     what="a dead letter to be scraped", interval=0.5)

            dashboard = load_dashboard()
            queries = panel_queries(dashboard)
            assert len(queries) >= 20, [q.name for q in queries]
            values = dict(GRAFANA)
            variables = {v["name"]: v for v in dashboard["templating"]["list"]}
            for name, v in variables.items():
                if v["type"] == "datasource":
                    continue
                assert v["type"] == "query", f"variable ${name}: type {v['type']} is not understood here"
                label, metric = variable_query(v)
                found = prom.label_values(label, metric)
                assert found, f"variable ${name} ({v['query']}) has no values: its panels would show nothing"
                # All of its values selected one by one, as Grafana writes them into a =~ matcher.
                values[name] = regex_value(found)
            assert prom.label_values("namespace", "taskq_workers") == [NAMESPACE]
            assert {"add", "sleep", "fail"} <= set(prom.label_values("task", "taskq_tasks_finished_total"))
            for q in queries:
                unknown = q.variables() - set(values) - GRAFANA_BUILTINS
                assert not unknown, f"{q.name} uses variables the dashboard does not define: {unknown}"
                assert q.variables() <= set(values), f"{q.name}: no value here for {q.variables() - set(values)}"
            assert set(EMPTY_HERE) <= {q.name for q in queries}, "EMPTY_HERE names queries the dashboard lacks"

            def run(q: PanelQuery, at: float | None = None) -> list[dict[str, Any]]:
                return prom.query(fine_subqueries(substitute(q.expr, values)), at=at)

            # The lag trend's [10m:1m] subquery would answer only once Prometheus holds samples at
            # two whole minutes (up to 2 min after the first scrape): evaluated at a 5 s resolution
            # here (fine_subqueries), the same expression otherwise, it answers within seconds.
            empty: list[str] = []
            results: dict[str, list[dict[str, Any]]] = {}

            def all_answer() -> bool:
                # Every panel at one instant (a moment back, so a scrape finishing now is not half
                # seen): the values compared below (lag by partition vs backlog) come from the same scrapes.
                at = time.time() - 0.3 * SCRAPE
                results.clear()
                results.update({q.name: run(q, at) for q in queries})
                empty[:] = [q.name for q in queries if q.name not in EMPTY_HERE
                            and not (results[q.name] and _finite(results[q.name]))]
                return not empty and settled()

            def settled() -> bool:
                # The cluster as the values below expect it once every scrape caught up (w4's first
                # scrape can land after the queries already answer): a state to wait for, not to race.
                def single(name: str) -> float | None:
                    res = results.get(name) or []
                    return float(res[0]["value"][1]) if len(res) == 1 else None
                return (single("Workers alive [A]") == 3
                        and single("In flight vs capacity [B]") == 3 * CONCURRENCY
                        and single("Consumer lag by partition [B]") == single("Backlog (consumer lag) [A]"))

            try:
                wait_for(all_answer, timeout=60, what="every dashboard query to answer", interval=1.0)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; no data (or NaN) from: {empty}") from None

            assert not load.errors, load.errors[:3]
        for q in queries:
            res = results[q.name]
            if q.name in EMPTY_HERE:
                assert not res, f"{q.name} is listed as empty here ({EMPTY_HERE[q.name]}) but answers {res}"
                continue
            assert res, q.name
            for s in res:
                missing = {label for label in q.labels() if not s["metric"].get(label)}
                assert not missing, f"{q.name}: series {s['metric']} lacks {missing}, which the panel shows"
            legends = [q.legend_of(s["metric"]) for s in res]
            assert len(set(legends)) == len(legends), f"{q.name}: series the legend cannot tell apart: {legends}"

        def by(name: str, label: str) -> dict[str, float]:
            return {s["metric"][label]: float(s["value"][1]) for s in results[name]}

        def one(name: str) -> float:
            (s,) = results[name]
            return float(s["value"][1])

        # Values, not only data: each replica reports the cluster gauges, counted once.
        assert one("Workers alive [A]") == 3
        assert by("Workers by status [A]", "status") == {"alive": 3, "lost": 1, "stopped": 0}
        assert set(by("Workers by status [B]", "worker")) == {"w1", "w2", "w4"}
        assert one("In flight vs capacity [B]") == 3 * CONCURRENCY
        assert 0 <= one("In flight vs capacity [A]") <= 3 * CONCURRENCY
        assert set(by("Consumer lag by partition [A]", "partition")) == {str(p) for p in range(settings.partitions)}
        assert one("Consumer lag by partition [B]") == one("Backlog (consumer lag) [A]") >= 0
        assert {"success", "failed", "retried", "dead"} <= set(by("Throughput by status [A]", "status"))
        assert by("Throughput by status [A]", "status")["success"] > 0
        assert one("Throughput by status [B]") > 0
        assert one("Tasks/s (5m) [A]") > 0
        assert one("Dead letters (1h) [A]") > 0
        for panel in ("Run time p50 / p95 / p99", "Queue wait p50 / p95 / p99"):
            p50, p95, p99 = (one(f"{panel} [{r}]") for r in "ABC")
            assert 0 < p50 <= p95 <= p99, (panel, p50, p95, p99)

        # The chart's alert rules loaded, each evaluated without error against these series; the
        # dead letters fire TaskqDeadLetters, and two failures in seven tasks (> 20%) put
        # TaskqHighFailureRatio in its 10 minutes of pending.
        rules = {r["name"]: r for r in prom.rules() if r["type"] == "alerting"}
        assert set(rules) == set(alert_names(chart_rules(helm=tool("helm"))))
        assert all(r["health"] == "ok" for r in rules.values()), {n: r.get("lastError") for n, r in rules.items()}

        def alert_states(name: str) -> dict[tuple[str, ...], str]:
            return {tuple(sorted(a["labels"].items())): a["state"]
                    for r in prom.rules() if r["name"] == name for a in r.get("alerts", [])}

        wait_for(lambda: any(dict(k).get("task") == "fail" and dict(k)["namespace"] == NAMESPACE and v == "firing"
                             for k, v in alert_states("TaskqDeadLetters").items()),
                 timeout=15, what="TaskqDeadLetters to fire for the fail task", interval=0.5)
        # Its own rule group is evaluated on its own clock: wait for its pending state, do not read
        # it at the instant the other alert fired (CI run 7 read it a moment before, empty).
        def failure_ratio_states() -> list[str]:
            return [v for k, v in alert_states("TaskqHighFailureRatio").items() if dict(k)["namespace"] == NAMESPACE]
        wait_for(lambda: failure_ratio_states() == ["pending"], timeout=30,
                 what="TaskqHighFailureRatio to be pending (its 10 minutes not yet over)", interval=0.5)
        assert not alert_states("TaskqNoWorkersAlive")
    finally:
        prom.close()


def fine_subqueries(expr: str) -> str:
    """``expr`` with each subquery's resolution (``[10m:1m]``) shortened to 5 s."""
    return re.sub(r"\[(\w+):\w+\]", r"[\1:5s]", expr)
