"""taskq on a real single-node Kubernetes cluster (tools/cluster): helm install, pods deleted,
killed, scaled and rolled under load, every backing service restarted — through helm, kubectl
and the API Service, never around the cluster.

The test process reaches Services and pods from inside the cluster's network namespace
(tests/e2e/netns.py), as a pod on the node would. Prints a report at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from taskq.devstack import default_cache_dir
from tests.e2e import netpol, panels, subchart
from tests.e2e import prometheus as prom
from tests.e2e import scenarios as sc
from tests.e2e.cluster import NAMESPACE as NETNS
from tests.e2e.cluster import Cluster, cluster_dir, running_cluster
from tests.e2e.netns import NetnsHttp
from tests.e2e.suite import (  # noqa: F401 - collected by pytest with this module's fixtures
    test_a_deleted_worker_pod_hands_its_tasks_over_without_running_any_twice,
    test_a_killed_worker_pods_tasks_are_rerun_by_the_others,
    test_a_poison_message_is_dead_lettered_and_no_worker_pod_restarts,
    test_api_redis_and_kafka_pods_recover_by_themselves_and_every_task_finishes,
    test_each_image_carries_an_sbom_of_exactly_its_hashed_lock,
    test_every_worker_and_api_pod_serves_metrics_inside_the_cluster,
    test_helm_install_brings_every_pod_ready_and_helm_test_passes,
    test_helm_upgrade_rolls_api_and_workers_without_losing_or_refusing_anything,
    test_scaling_workers_up_mid_load_spreads_work_and_down_loses_nothing,
    test_the_other_kafka_client_takes_over_by_a_rolling_switch_and_hands_tasks_over_too,
    test_the_ui_and_api_through_the_ingress_with_tls_sign_in_submit_live_and_upgrade,
    test_the_web_ui_loads_through_the_api_service,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NS = "taskq-e2e"
RELEASE = "taskq"
NETNS_PATH = Path("/run/netns") / NETNS


class ClusterE2E:
    """The scenarios' view of this machine's cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.namespace = NS
        self.release = RELEASE
        self.token: str | None = None
        self.http = NetnsHttp(NETNS_PATH)
        self._api: str | None = None

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> str:
        return self.cluster.kubectl(*args, timeout=timeout, check=check, stdin=stdin)

    def helm(self, *args: str, timeout: float = 600) -> str:
        helm = default_cache_dir() / "bin" / "helm"
        res = subprocess.run([str(helm), "--kubeconfig", str(self.cluster.kubeconfig), *args],
                             capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
        return res.stdout

    def api_url(self) -> str:
        if self._api is None:
            ip = self.kubectl("get", "svc", f"{RELEASE}-api", "-n", NS, "-o", "jsonpath={.spec.clusterIP}")
            self._api = f"http://{ip}:80"
        return self._api

    def _ctr(self, *args: str) -> str:
        sock = cluster_dir() / "run" / "containerd" / "containerd.sock"
        res = subprocess.run(["ctr", "--address", str(sock), "-n", "k8s.io", *args],
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {res.stderr}")
        return res.stdout

    def kill_container(self, pod: str, container: str) -> None:
        """SIGKILL the container's process from the node, as the OOM killer or a crash would."""
        status = json.loads(self.kubectl("get", "pod", pod, "-n", NS, "-o", "json"))["status"]
        cid = next(c["containerID"] for c in status["containerStatuses"] if c["name"] == container)
        self._ctr("task", "kill", "--signal", "SIGKILL", cid.split("://", 1)[1])

    def tag_images(self, tag: str) -> None:
        for image in ("api", "worker"):
            src = f"docker.io/library/taskq-{image}:e2e"
            self._ctr("images", "tag", "--force", src, f"docker.io/library/taskq-{image}:{tag}")

    def helm_upgrade(self, *set_values: str) -> None:
        sets = [a for v in set_values for a in ("--set", v)]
        self.helm("upgrade", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS, "-f", str(HERE / "values-cluster.yaml"),
                  *sets, "--wait", "--timeout", "10m", timeout=660)

    def restart(self, backing: str) -> None:
        """Deletes the StatefulSet's pod (its hostPath data stay) and waits until it is Ready again."""
        self.kubectl("delete", "pod", f"{backing}-0", "-n", NS, "--wait=true", timeout=120)
        sc.rollout(self, f"statefulset/{backing}")

    def ingress_address(self) -> str:
        return self.kubectl("get", "svc", "traefik", "-n", "traefik", "-o", "jsonpath={.spec.clusterIP}")

    def tls_http(self, ca: Path) -> NetnsHttp:
        return NetnsHttp(NETNS_PATH, threads=4, verify=ssl.create_default_context(cafile=str(ca)))

    def browser_executable(self, folder: Path) -> str:
        # Playwright drives the browser over a pipe, so only the browser's own sockets are in the namespace.
        wrapper = folder / "chromium-in-netns"
        wrapper.write_text(f'#!/bin/sh\nexec nsenter --net={NETNS_PATH} -- /usr/bin/chromium "$@"\n')
        wrapper.chmod(0o755)
        return str(wrapper)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[sc.Report]:
    rep = sc.Report()
    yield rep
    text = rep.render()
    out = ROOT / ".taskq" / "e2e-report.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"\ne2e report (also in {out.relative_to(ROOT)}):\n{text}")


@contextmanager
def installed_release() -> Iterator[ClusterE2E]:
    """The cluster with Kafka, Redis and the release (values-cluster.yaml) in the e2e namespace."""
    with running_cluster() as cluster:
        e = ClusterE2E(cluster)
        try:
            _install(e)
            yield e
        finally:
            if not os.environ.get("TASKQ_CLUSTER_KEEP"):
                e.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", timeout=150, check=False)
            e.close()


@pytest.fixture(scope="module")
def env() -> Iterator[ClusterE2E]:
    with installed_release() as e:
        yield e


def _cluster_mk(name: str) -> str:
    found = re.search(rf"^{name} := (\S+)$", (ROOT / "tools" / "cluster" / "cluster.mk").read_text(), re.M)
    assert found, f"{name} is not set in tools/cluster/cluster.mk"
    return found.group(1)


def _install(e: ClusterE2E) -> None:
    # The ingress controller the UI is reached through, and kube-router enforcing NetworkPolicy (both
    # built by make cluster-bin, like Kubernetes).
    for addon in ("traefik", "netpol"):
        subprocess.run([str(ROOT / "tools" / "cluster" / "addons.sh"), addon], check=True, timeout=300,
                       env={**os.environ, "TRAEFIK_VERSION": _cluster_mk("TRAEFIK_VERSION")})
    e.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=150)
    e.kubectl("create", "namespace", NS)
    volumes = cluster_dir() / "run" / "volumes" / f"{NS}-{uuid.uuid4().hex[:8]}"
    backing = (HERE / "manifests" / "backing.yaml").read_text().replace("{volumes}", str(volumes))
    e.kubectl("apply", "-n", NS, "-f", "-", stdin=backing)
    sc.rollout(e, "statefulset/kafka")
    sc.rollout(e, "statefulset/redis")
    e.helm("install", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS, "-f", str(HERE / "values-cluster.yaml"),
           "--wait", "--timeout", "10m", timeout=660)


def test_a_parent_chart_with_taskq_as_a_dependency_installs_runs_a_task_and_uninstalls(
    env: ClusterE2E, tmp_path: Path, report: sc.Report
) -> None:
    subchart.install_run_uninstall(env, tmp_path, report)


def test_the_charts_network_policies_are_enforced_on_the_cluster(env: ClusterE2E, report: sc.Report) -> None:
    netpol.enforced(env, report, image="docker.io/library/taskq-worker:e2e",
                    kubectl=[str(env.cluster.kubectl_path), "--kubeconfig", str(env.cluster.kubeconfig)])


@dataclass
class Watch:
    """The Prometheus that scrapes the release from its install to the last scenario, and when each
    scenario started (the dashboard pictures mark them)."""

    server: prom.Prometheus
    targets: prom.PodTargets
    started: float
    marks: list[tuple[float, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def watch(env: ClusterE2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watch]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus is not installed (make test-e2e installs it: tools/need.sh prometheus)")
    # Debian builds Prometheus without Kubernetes service discovery ("field kubernetes_sd_configs not
    # found"), so PodTargets does what kubernetes_sd would: it lists the annotated pods of the
    # release's namespace through the Kubernetes API and hands them over as file_sd targets with
    # the labels the Prometheus operator's PodMonitor adds (namespace, pod). `make test-prometheus`
    # runs a Prometheus built with kubernetes_sd instead (test_prometheus_sd.py).
    folder = tmp_path_factory.mktemp("prometheus")
    targets = prom.PodTargets(env, folder / "targets.json")
    try:
        with prom.running(binary, targets.config(), folder, netns=NETNS_PATH, http=env.http) as p:
            yield Watch(p, targets, time.time())
    finally:
        targets.close()


@pytest.fixture(autouse=True)
def _mark_scenario(request: pytest.FixtureRequest, watch: Watch) -> None:
    watch.marks.append((time.time(), request.node.name.removeprefix("test_").replace("_", " ")))


# Defined here, after the shared tests, so it runs last: by then every pod has run tasks.
def test_prometheus_scrapes_every_pod_and_the_dashboard_panels_show_the_whole_run(
    env: ClusterE2E, watch: Watch, report: sc.Report
) -> None:
    pods = watch.targets.pods
    assert len(pods) == 5, pods
    sc.wait_for(lambda: prom.scraped_pods(watch.server, NS) >= pods, timeout=90,
                what=f"Prometheus to scrape all of {sorted(pods)}")
    res = prom.check_dashboard(env, watch.server, pods)
    out = ROOT / "docs" / "dashboard" if os.environ.get("TASKQ_UPDATE_SCREENSHOTS") else ROOT / ".taskq" / "dashboard"
    dashboard = json.loads(prom.DASHBOARD.read_text())
    subst = {"$namespace": NS, "$task": ".*", "$__rate_interval": "1m"}
    drawn = panels.render(dashboard, watch.server.range, subst, start=watch.started, end=time.time(),
                          marks=watch.marks[:-1], out=out)
    # Every panel is drawn, and every one whose queries had data at the end has data over the run.
    assert [p.title for p in drawn] == [p["title"] for p in dashboard["panels"] if p.get("targets")]
    empty = [p.title for p in drawn if not p.series]
    assert set(empty) <= set(res.empty_titles), f"panels drawn without data: {empty}"
    report.add(sc.Row("Prometheus scrape + dashboard PromQL + pictures", res.tasks, 0, 0,
                      note=f"{len(pods)} annotated pods scraped; {res.with_data} of {res.queries} queries with data"
                           f" (no events for: {', '.join(res.empty_titles) or 'none'}); {len(drawn)} panels drawn"
                           f" into {out.relative_to(ROOT)}"))
