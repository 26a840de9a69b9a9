"""taskq on a real single-node Kubernetes cluster (tools/cluster): helm install, pods deleted,
killed, scaled and rolled under load, every backing service restarted — through helm, kubectl
and the API Service, never around the cluster.

The test process reaches Services and pods from inside the cluster's network namespace
(tests/e2e/netns.py), as a pod on the node would. Prints a report at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskq.devstack import default_cache_dir
from tests.e2e import scenarios as sc
from tests.e2e.cluster import NAMESPACE as NETNS
from tests.e2e.cluster import Cluster, cluster_dir, running_cluster
from tests.e2e.netns import NetnsHttp

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

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def report() -> Iterator[sc.Report]:
    rep = sc.Report()
    yield rep
    text = rep.render()
    out = ROOT / ".taskq" / "e2e-report.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    sys.__stdout__.write(f"\n\ne2e report (also in {out.relative_to(ROOT)}):\n{text}\n")


@pytest.fixture(scope="module")
def env() -> Iterator[ClusterE2E]:
    with running_cluster() as cluster:
        e = ClusterE2E(cluster)
        try:
            _install(e)
            yield e
        finally:
            if not os.environ.get("TASKQ_CLUSTER_KEEP"):
                e.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", timeout=150, check=False)
            e.close()


def _install(e: ClusterE2E) -> None:
    e.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=150)
    e.kubectl("create", "namespace", NS)
    volumes = cluster_dir() / "run" / "volumes" / f"{NS}-{uuid.uuid4().hex[:8]}"
    backing = (HERE / "manifests" / "backing.yaml").read_text().replace("{volumes}", str(volumes))
    e.kubectl("apply", "-n", NS, "-f", "-", stdin=backing)
    sc.rollout(e, "statefulset/kafka")
    sc.rollout(e, "statefulset/redis")
    e.helm("install", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS, "-f", str(HERE / "values-cluster.yaml"),
           "--wait", "--timeout", "10m", timeout=660)


def _workers_alive_with_partitions(e: ClusterE2E, n: int) -> bool:
    alive = [w for w in sc.workers(e) if w["status"] == "alive" and w.get("partitions")]
    return len(alive) == n


def _settle(e: ClusterE2E, replicas: int = 3) -> None:
    """Back to the resting shape between scenarios: `replicas` workers, all with partitions."""
    sc.rollout(e, f"deployment/{sc.worker_name(e)}")
    sc.wait_for(lambda: len(sc.ready_pods(e, "worker")) == replicas, timeout=120, what=f"{replicas} ready workers")
    sc.wait_for(lambda: _workers_alive_with_partitions(e, replicas), timeout=90,
                what=f"{replicas} live workers holding partitions")


def test_helm_install_brings_every_pod_ready_and_helm_test_passes(env: ClusterE2E, report: sc.Report) -> None:
    assert len(sc.ready_pods(env, "worker")) == 3
    assert len(sc.ready_pods(env, "api")) == 2
    out = env.helm("test", RELEASE, "-n", NS, "--timeout", "5m", timeout=330)
    assert "Phase:          Succeeded" in out, out
    _settle(env)
    report.add(sc.Row("helm install + helm test", 1, 0, 0, note="3 workers, 2 API pods Ready"))


def test_a_deleted_worker_pod_hands_its_tasks_over_without_running_any_twice(
    env: ClusterE2E, report: sc.Report
) -> None:
    ids = sc.submit(env, "sleep", [1], 300)
    sc.wait_mid_run(env, ids)
    victim = sc.busiest_worker(env, ids)
    env.kubectl("delete", "pod", victim, "-n", NS, "--wait=false")
    recs = sc.wait_terminal(env, ids, timeout=300)
    dups, _ = sc.check_outcome(recs)
    assert any(r["worker"] == victim for r in recs.values())
    report.add(sc.Row("kubectl delete pod (graceful)", len(ids), 0, dups))
    _settle(env)


@pytest.mark.parametrize("how", ["force-delete", "sigkill-from-node"])
def test_a_killed_worker_pods_tasks_are_rerun_by_the_others(env: ClusterE2E, report: sc.Report, how: str) -> None:
    ids = sc.submit(env, "sleep", [1], 300)
    sc.wait_mid_run(env, ids)
    victim = sc.busiest_worker(env, ids)
    killed_at = time.time()
    if how == "force-delete":
        env.kubectl("delete", "pod", victim, "-n", NS, "--grace-period=0", "--force", "--wait=false")
    else:
        env.kill_container(victim, "worker")
    recs = sc.wait_terminal(env, ids, timeout=300)
    dups, recovery = sc.check_outcome(recs, lost_worker=victim, since=killed_at)
    report.add(sc.Row(f"worker {how}", len(ids), 0, dups, recovery,
                      note="re-runs only of tasks in flight, as attempt 2"))
    _settle(env)


def test_scaling_workers_up_mid_load_spreads_work_and_down_loses_nothing(env: ClusterE2E, report: sc.Report) -> None:
    deployment = f"deployment/{sc.worker_name(env)}"
    before = {p["metadata"]["name"] for p in sc.ready_pods(env, "worker")}
    ids = sc.submit(env, "sleep", [1], 600)
    sc.wait_mid_run(env, ids)
    t0 = time.monotonic()
    env.kubectl("scale", deployment, "-n", NS, "--replicas=5")
    sc.wait_for(lambda: _workers_alive_with_partitions(env, 5), timeout=120, what="5 workers holding partitions")
    spread = time.monotonic() - t0
    new = {p["metadata"]["name"] for p in sc.ready_pods(env, "worker")} - before
    assert len(new) == 2
    sc.wait_for(lambda: any(r.get("worker") in new for r in sc.records(env, ids).values()), timeout=60,
                what="a new pod to run a task")
    env.kubectl("scale", deployment, "-n", NS, "--replicas=1")
    sc.wait_for(lambda: len(sc.pods(env, "worker")) == 1, timeout=120, what="one worker pod left")
    recs = sc.wait_terminal(env, ids, timeout=600)
    dups, _ = sc.check_outcome(recs)
    ran_by_new = sum(1 for r in recs.values() if r["worker"] in new)
    report.add(sc.Row("scale 3 -> 5 -> 1 under load", len(ids), 0, dups, spread,
                      note=f"5 workers held partitions {spread:.1f}s after scale; new pods ran {ran_by_new}"))
    env.kubectl("scale", deployment, "-n", NS, "--replicas=3")
    _settle(env)


def test_helm_upgrade_rolls_api_and_workers_without_losing_or_refusing_anything(
    env: ClusterE2E, report: sc.Report
) -> None:
    env.tag_images("e2e-2")
    ids = sc.submit(env, "sleep", [1], 300)
    with sc.api_prober(env) as probes:
        env.helm("upgrade", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS, "-f", str(HERE / "values-cluster.yaml"),
                 "--set", "image.tag=e2e-2", "--wait", "--timeout", "10m", timeout=660)
        sc.rollout(env, f"deployment/{RELEASE}-api")
    images = {c["image"] for p in sc.pods(env, "worker") + sc.pods(env, "api") for c in p["spec"]["containers"]}
    assert images == {"taskq-api:e2e-2", "taskq-worker:e2e-2"}, images
    recs = sc.wait_terminal(env, ids, timeout=600)
    dups, _ = sc.check_outcome(recs)
    report.add(sc.Row("helm upgrade (rolling, new tag)", len(ids), 0, dups,
                      note=f"API probes during the roll: {probes['ok']} ok, {probes['bad']} not 2xx"))
    assert probes["ok"] > 0 and probes["bad"] == 0, probes
    _settle(env)


def _submit_until_accepted(env: ClusterE2E, n: int, *, timeout: float = 180) -> list[str]:
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(ids) < n:
        assert time.monotonic() < deadline, f"only {len(ids)} of {n} submits accepted in {timeout:.0f}s"
        try:
            ids.extend(sc.submit(env, "sleep", [0.5], min(50, n - len(ids)), chunk=50))
        except (AssertionError, httpx.HTTPError):  # a 503 or a refused connection while a pod is replaced
            time.sleep(1)
    return ids


def test_api_redis_and_kafka_pods_recover_by_themselves_and_every_task_finishes(
    env: ClusterE2E, report: sc.Report
) -> None:
    ids = sc.submit(env, "sleep", [0.5], 200)
    api_pod = sc.ready_pods(env, "api")[0]["metadata"]["name"]
    env.kubectl("delete", "pod", api_pod, "-n", NS, "--wait=false")
    ids += _submit_until_accepted(env, 100)
    env.kubectl("delete", "pod", "redis-0", "-n", NS, "--wait=true", timeout=120)
    sc.rollout(env, "statefulset/redis")
    ids += _submit_until_accepted(env, 100)
    t0 = time.monotonic()
    env.kubectl("delete", "pod", "kafka-0", "-n", NS, "--wait=true", timeout=120)
    sc.rollout(env, "statefulset/kafka")
    ids += _submit_until_accepted(env, 100)
    back = time.monotonic() - t0
    recs = sc.wait_terminal(env, ids, timeout=600)
    bad = {t: r["status"] for t, r in recs.items() if r["status"] != "success"}
    assert not bad, f"{len(bad)} tasks did not succeed: {list(bad.items())[:5]}"
    dups = sum(1 for r in recs.values() if r["attempts"] > 1)
    report.add(sc.Row("API, Redis and Kafka pods restarted", len(ids), 0, dups, back,
                      note="every accepted task success; recovery = Kafka pod restart to submits accepted"))
    _settle(env)


def test_the_web_ui_loads_through_the_api_service(env: ClusterE2E, tmp_path: Path, report: sc.Report) -> None:
    from playwright.sync_api import sync_playwright

    # The browser runs inside the cluster's network namespace, as a client next to the node would;
    # Playwright drives it over a pipe, not the network. No ingress controller can be had here.
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec nsenter --net={NETNS_PATH} -- /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    tid = sc.submit(env, "add", [20, 22], 1)[0]
    sc.wait_terminal(env, [tid], timeout=60)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(wrapper), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(env.api_url() + "/", timeout=30000)
            page.wait_for_selector(f"text={tid[:8]}", timeout=30000)
            page.screenshot(path=str(ROOT / ".taskq" / "e2e-ui.png"))
        finally:
            browser.close()
    report.add(sc.Row("web UI through the API Service", 1, 0, 0, note="Chromium in the cluster network"))


def test_every_worker_and_api_pod_serves_metrics_inside_the_cluster(env: ClusterE2E, report: sc.Report) -> None:
    checked = 0
    for component in ("worker", "api"):
        for pod in sc.ready_pods(env, component):
            ann = pod["metadata"].get("annotations", {})
            assert ann.get("prometheus.io/scrape") == "true", ann
            url = f"http://{pod['status']['podIP']}:{ann['prometheus.io/port']}{ann['prometheus.io/path']}"
            r = env.http.request("GET", url)
            assert r.status_code == 200, (url, r.status_code)
            name = "taskq_tasks_started_total" if component == "worker" else "taskq_api_"
            assert name in r.text, (url, r.text[:300])
            checked += 1
    report.add(sc.Row("pod /metrics from inside the cluster", 0, 0, 0, note=f"{checked} pods scraped"))
