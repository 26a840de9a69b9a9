"""Prometheus finds the release's pods itself: kubernetes_sd_configs (role: pod) against the
cluster's API server, selecting what the chart's ServiceMonitor and PodMonitor select, and every
query of the Grafana dashboard answers from what it scraped.

Debian's Prometheus has no Kubernetes service discovery, so this runs Prometheus 3 built from the
Go module proxy (`make cluster-prometheus-bin`, tools/cluster/build-prometheus.sh); run it with
`make test-prometheus`. It is not part of `make test`: the cold build takes longer than the suite
may spend on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import prometheus as prom
from tests.e2e import scenarios as sc
from tests.e2e.cluster import cluster_dir
from tests.e2e.test_cluster import HERE, NETNS_PATH, NS, RELEASE, ROOT, ClusterE2E, installed_release

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def env() -> Iterator[ClusterE2E]:
    with installed_release() as e:
        yield e


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[sc.Report]:
    rep = sc.Report()
    yield rep
    text = rep.render()
    out = ROOT / ".taskq" / "e2e-prometheus-report.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"\nPrometheus kubernetes_sd report (also in {out.relative_to(ROOT)}):\n{text}")


def monitors(env: ClusterE2E) -> list[dict[str, Any]]:
    """The chart's ServiceMonitor, PodMonitor and API Service as this release would render them."""
    out = env.helm("template", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS, "--kube-version", "1.37.2",
                   "-f", str(HERE / "values-cluster.yaml"), "--set", "metrics.serviceMonitor.enabled=true",
                   "--show-only", "templates/monitoring.yaml", "--show-only", "templates/api-service.yaml")
    return [d for d in yaml.safe_load_all(out) if d]


def scrape_configs(objs: list[dict[str, Any]], kubeconfig: Path) -> list[dict[str, Any]]:
    """One role-pod job per monitor: the pods it selects, the port it names, the labels the
    Prometheus operator gives the series (namespace, pod, container, endpoint)."""
    sm = next(o for o in objs if o["kind"] == "ServiceMonitor")
    pm = next(o for o in objs if o["kind"] == "PodMonitor")
    svc = next(o for o in objs if o["kind"] == "Service"
               and sm["spec"]["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items())
    # A ServiceMonitor scrapes the endpoints of the Service port it names: the pods behind the
    # Service's selector, on that port's target port.
    svc_port = next(p for p in svc["spec"]["ports"] if p["name"] == sm["spec"]["endpoints"][0]["port"])
    jobs = [("taskq-api", svc["spec"]["selector"], str(svc_port["targetPort"]), sm["spec"]["endpoints"][0]["path"]),
            ("taskq-worker", pm["spec"]["selector"]["matchLabels"], pm["spec"]["podMetricsEndpoints"][0]["port"],
             pm["spec"]["podMetricsEndpoints"][0]["path"])]
    return [{
        "job_name": name,
        "metrics_path": path,
        "kubernetes_sd_configs": [{
            "role": "pod", "kubeconfig_file": str(kubeconfig), "namespaces": {"names": [NS]},
            "selectors": [{"role": "pod", "label": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}],
        }],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port, "action": "keep"},
            # The operator leaves out pods that have finished.
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Succeeded|Failed", "action": "drop"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "target_label": "endpoint"},
        ],
    } for name, labels, port, path in jobs]


def test_kubernetes_sd_scrapes_every_api_and_worker_pod_and_the_dashboard_queries_return_data(
    env: ClusterE2E, tmp_path: Path, report: sc.Report
) -> None:
    binary = cluster_dir() / "bin" / "prometheus"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} missing: make cluster-prometheus-bin builds it (make test-prometheus does)")
    config = {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
              "scrape_configs": scrape_configs(monitors(env), env.cluster.kubeconfig)}
    expected = {c: {p["metadata"]["name"] for p in sc.ready_pods(env, c)} for c in ("api", "worker")}
    assert (len(expected["api"]), len(expected["worker"])) == (2, 3), expected
    pods = expected["api"] | expected["worker"]
    by_job: dict[str, set[str]] = {}

    with prom.running(str(binary), config, tmp_path, netns=NETNS_PATH, http=env.http) as query:
        def every_pod_up() -> bool:
            by_job.clear()
            for s in query(f'up{{namespace="{NS}"}} == 1'):
                by_job.setdefault(s["metric"]["job"], set()).add(s["metric"]["pod"])
            return by_job == {"taskq-api": expected["api"], "taskq-worker": expected["worker"]}

        try:
            sc.wait_for(every_pod_up, timeout=90, what="kubernetes_sd to find and scrape every API and worker pod")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; scraped: {by_job}, expected: {expected}") from None
        res = prom.check_dashboard(env, query, pods)
    report.add(sc.Row("Prometheus kubernetes_sd + dashboard PromQL", res.tasks, 0, 0,
                      note=f"{len(expected['api'])} API + {len(expected['worker'])} worker pods found and "
                           f"scraped; {res.with_data} of {res.queries} queries with data"
                           f" (no events for: {', '.join(res.empty_titles) or 'none'})"))
