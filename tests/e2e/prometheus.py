"""A real Prometheus inside the cluster's network namespace, and the checks the e2e suites make
with it: every pod of the release scraped, every query of the chart's Grafana dashboard answered."""

from __future__ import annotations

import json
import re
import subprocess
import threading
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


class Prometheus:
    """A running Prometheus's HTTP API: called with an expression, an instant query."""

    def __init__(self, base: str, http: sc.Http, alive: Callable[[], None]) -> None:
        self.base, self.http, self._alive = base, http, alive

    def _get(self, path: str, params: dict[str, str]) -> Any:
        self._alive()
        r = self.http.request("GET", f"{self.base}/{path}", params=params)
        if r.status_code == 503:
            # Prometheus answers 503 in plain text until its storage is ready: retried like a refused
            # connection by the callers' wait_for (CI run 19 parsed that text as JSON and failed).
            raise httpx.HTTPStatusError("Prometheus is not ready yet", request=r.request, response=r)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]["result"]

    def __call__(self, expr: str) -> list[dict[str, Any]]:
        return list(self._get("query", {"query": expr}))

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return list(self._get("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                               "step": f"{step:.3f}"}))


@contextmanager
def running(binary: str, config: dict[str, Any], folder: Path, *, netns: Path, http: sc.Http,
            port: int = 19090) -> Iterator[Prometheus]:
    """Prometheus with ``config`` on 127.0.0.1:``port`` of ``netns``."""
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    log_path = folder / "prometheus.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes it until stopped
    proc = subprocess.Popen(
        ["nsenter", f"--net={netns}", "--", binary, f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive() -> None:
        assert proc.poll() is None, f"prometheus exited ({proc.returncode}): {log_path.read_text()[-2000:]}"

    try:
        yield Prometheus(f"http://127.0.0.1:{port}/api/v1", http, alive)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


class PodTargets:
    """What kubernetes_sd would find, for a Prometheus without it (Debian's): the release's annotated
    API and worker pods, rewritten as file_sd targets every few seconds while pods come and go."""

    def __init__(self, env: sc.E2E, path: Path, *, interval: float = 5.0) -> None:
        self.env, self.path, self.interval = env, path, interval
        self.pods: set[str] = set()
        self._stop = threading.Event()
        self.write()
        self._thread = threading.Thread(target=self._run, name="pod-targets", daemon=True)
        self._thread.start()

    def write(self) -> None:
        targets: list[dict[str, Any]] = [
            {"targets": [f"{p['status']['podIP']}:{p['metadata']['annotations']['prometheus.io/port']}"],
             "labels": {"namespace": self.env.namespace, "pod": p["metadata"]["name"], "component": c,
                        "__metrics_path__": p["metadata"]["annotations"]["prometheus.io/path"]}}
            for c in ("api", "worker") for p in sc.ready_pods(self.env, c)
            if p["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"
        ]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets))
        tmp.replace(self.path)  # Prometheus never reads half a file
        self.pods = {t["labels"]["pod"] for t in targets}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except Exception:  # a kubectl hiccup mid-scenario: the next round lists again
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "scrape_configs": [{
                "job_name": "taskq-pods",
                "file_sd_configs": [{"files": [str(self.path)], "refresh_interval": "5s"}],
            }],
        }


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
