"""A real Prometheus inside the cluster's network namespace, and the checks the e2e suites make
with it: every pod of the release scraped, every query of the chart's Grafana dashboard answered."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e import scenarios as sc

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "taskq" / "dashboards" / "taskq.json"
# Counters of events the check never causes (dead letters, redeliveries, errors) have no series;
# the lag trend's 10m:1m subquery needs samples a minute apart, more than the check waits.
QUIET = ("dead_lettered", "redelivered", "errors_total", 'status="retried"', "deriv(")

Query = Callable[[str], list[dict[str, Any]]]


@contextmanager
def running(binary: str, config: dict[str, Any], folder: Path, *, netns: Path, http: sc.Http,
            port: int = 19090) -> Iterator[Query]:
    """Prometheus with ``config`` on 127.0.0.1:``port`` of ``netns``; yields an instant-query function."""
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    log_path = folder / "prometheus.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes it until stopped
    proc = subprocess.Popen(
        ["nsenter", f"--net={netns}", "--", binary, f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/v1"

    def query(expr: str) -> list[dict[str, Any]]:
        assert proc.poll() is None, f"prometheus exited ({proc.returncode}): {log_path.read_text()[-2000:]}"
        r = http.request("GET", f"{base}/query", params={"query": expr})
        if r.status_code == 503:
            # Prometheus answers 503 in plain text until its storage is ready: retried like a refused
            # connection by the callers' wait_for (CI run 19 parsed that text as JSON and failed).
            raise httpx.HTTPStatusError("Prometheus is not ready yet", request=r.request, response=r)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    try:
        yield query
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def scraped_pods(query: Query, namespace: str) -> set[str]:
    return {s["metric"]["pod"] for s in query(f'up{{namespace="{namespace}"}} == 1')}


@dataclass
class DashboardResult:
    tasks: int
    with_data: int
    queries: int
    empty_titles: list[str]
    pods_serving: set[str]


def check_dashboard(env: sc.E2E, query: Query, pods: set[str]) -> DashboardResult:
    """Runs load through the release, then every dashboard query until each that can has data, and
    checks that every pod serves at least one metric the dashboard reads."""
    # Load after the first scrapes, so rate() and histograms see it.
    ids = sc.submit(env, "sleep", [0.2], 60) + sc.submit(env, "fail", ["on purpose"], 5)
    sc.wait_terminal(env, ids, timeout=120)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    subst = {"$namespace": env.namespace, "$task": ".*", "$__rate_interval": "1m"}

    def run(expr: str) -> list[dict[str, Any]]:
        for k, v in subst.items():
            expr = expr.replace(k, v)
        return query(expr)

    must = [(title, e) for title, e in exprs if not any(q in e for q in QUIET)]
    missing: list[str] = []

    def all_have_data() -> bool:
        missing[:] = [f"{title}: {e}" for title, e in must if not run(e)]
        return not missing

    try:
        sc.wait_for(all_have_data, timeout=60, what="every dashboard panel to have data")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still empty: {missing}") from None
    empty = sorted({title for title, e in exprs if not run(e)})
    metrics = sorted({m for _, e in exprs for m in re.findall(r"\b(taskq_[a-z_]+)\{", e)})
    serving = {s["metric"]["pod"] for s in query(f'count by (pod) ({{__name__=~"{"|".join(metrics)}",'
                                                 f'namespace="{env.namespace}"}})')}
    assert serving == pods, f"pods serving no metric the dashboard reads: {sorted(pods - serving)}"
    finished = query(f'taskq_tasks_finished_total{{namespace="{env.namespace}"}}')
    workers_seen = {s["metric"].get("worker") for s in finished}
    assert workers_seen & pods, workers_seen
    return DashboardResult(len(ids), len(must), len(exprs), empty, serving)
