"""The test cluster itself: a node that runs pods, a pod network with Services and DNS, and a
teardown that leaves the host as it found it. Runs with `pytest tests/e2e -m e2e` as root after
`make cluster-images` (the worker image must be in the cluster); elsewhere it skips with one line.
A cluster that was already running is reused and kept; its teardown is tested only with
TASKQ_CLUSTER_TEST_DOWN=1 (it then comes back up empty).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import NAMESPACE, Cluster, cluster_dir, cluster_down, cluster_up, running_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

WORKER_IMAGE = "taskq-worker:e2e"


@pytest.fixture(scope="module")
def k8s_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


def _manifests(ns: str) -> str:
    # The worker image serves HTTP with the stdlib, so the same image is server and client.
    web = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [{
                        "name": "web", "image": WORKER_IMAGE, "imagePullPolicy": "Never",
                        "command": ["python3", "-m", "http.server", "8080", "--directory", "/opt/taskq"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }
    svc = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    client = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "client", "namespace": ns},
        "spec": {
            "securityContext": {"runAsNonRoot": True},
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "client", "image": WORKER_IMAGE, "imagePullPolicy": "Never",
                "command": ["python3", "-c", "import time; time.sleep(1e6)"],
            }],
        },
    }
    return "\n".join(json.dumps(m) for m in (web, svc, client))


@pytest.fixture(scope="module")
def app_ns(k8s_cluster: Cluster) -> Iterator[str]:
    # The kubelet lists the node's images in its status every 10 s, so a fresh node needs a moment.
    deadline = time.monotonic() + 30
    images = ("get", "node", "localhost", "-o", "jsonpath={.status.images[*].names}")
    while WORKER_IMAGE not in k8s_cluster.kubectl(*images):
        if time.monotonic() > deadline:
            pytest.fail(f"{WORKER_IMAGE} is not in the cluster: run make cluster-images")
        time.sleep(1)
    ns = f"smoke-{uuid.uuid4().hex[:6]}"
    k8s_cluster.kubectl("create", "namespace", ns)
    try:
        k8s_cluster.kubectl("apply", "-f", "-", stdin=_manifests(ns))
        k8s_cluster.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        k8s_cluster.kubectl("-n", ns, "wait", "pod/client", "--for=condition=Ready", "--timeout=120s", timeout=130)
        yield ns
    finally:
        k8s_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_node_is_ready_and_reports_the_pinned_version(k8s_cluster: Cluster) -> None:
    from kubernetes import client

    api = client.CoreV1Api(k8s_cluster.api_client())
    node = api.read_node("localhost")
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True"
    assert node.status.node_info.kubelet_version == "v1.37.2"
    version = client.VersionApi(k8s_cluster.api_client()).get_code()
    assert version.git_version == "v1.37.2"


def test_worker_image_deployment_schedules_and_runs(k8s_cluster: Cluster, app_ns: str) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(k8s_cluster.api_client())
    assert apps.read_namespaced_deployment("web", app_ns).status.available_replicas == 1
    pods = client.CoreV1Api(k8s_cluster.api_client()).list_namespaced_pod(app_ns, label_selector="app=web").items
    assert [p.status.phase for p in pods] == ["Running"]
    # A pod address from the bridge network, not the node's.
    assert pods[0].status.pod_ip.startswith("10.244.0.")


def test_service_name_resolves_through_cluster_dns_and_routes_to_the_pod(k8s_cluster: Cluster, app_ns: str) -> None:
    cluster_ip = k8s_cluster.kubectl("-n", app_ns, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    # kube-proxy programs the Service's rules after the EndpointSlice turns ready, so the pod can
    # be Ready a moment before its Service routes (its REJECT rule answers "no route to host");
    # the client waits up to 30 s for the route, then reports the last error.
    script = (
        "import socket, time, urllib.request\n"
        f"print(socket.gethostbyname('web.{app_ns}.svc.cluster.local'))\n"
        "print(socket.gethostbyname('web'))\n"
        "deadline = time.monotonic() + 30\n"
        "while True:\n"
        "    try:\n"
        "        print(urllib.request.urlopen('http://web/', timeout=10).status)\n"
        "        break\n"
        "    except OSError:\n"
        "        if time.monotonic() > deadline:\n"
        "            raise\n"
        "        time.sleep(0.2)\n"
    )
    out = k8s_cluster.kubectl("-n", app_ns, "exec", "client", "--", "python3", "-c", script)
    assert out.split() == [cluster_ip, cluster_ip, "200"]


def test_port_forward_reaches_a_service_from_the_host(k8s_cluster: Cluster, app_ns: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pf = subprocess.Popen(
        [str(k8s_cluster.kubectl_path), "--kubeconfig", str(k8s_cluster.kubeconfig),
         "-n", app_ns, "port-forward", "svc/web", f"{port}:80"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        pf.terminate()
        pf.wait(10)


def _cluster_pids() -> list[int]:
    pids = []
    for f in (cluster_dir() / "run" / "pids").glob("*"):
        pids.append(int(f.read_text().strip()))
    ns = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True, text=True)
    pids += [int(p) for p in ns.stdout.split()]
    return pids


def _alive(pid: int) -> bool:
    try:
        # A zombie has no command line: it has exited and only waits for its parent to reap it.
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""
    except OSError:
        return False


def test_cluster_down_leaves_nothing_behind(k8s_cluster: Cluster) -> None:
    if k8s_cluster.reused and not os.environ.get("TASKQ_CLUSTER_TEST_DOWN"):
        # Somebody's cluster, with their releases in it: taken down only when asked to.
        pytest.skip("the cluster was running before this session; TASKQ_CLUSTER_TEST_DOWN=1 takes it down and up")
    recorded = dict(
        line.split("=", 1) for line in (cluster_dir() / "host" / "sysctls").read_text().split()
    )
    pids = _cluster_pids()
    assert pids, "the running cluster has no recorded processes"
    api_port = int(_kubeconfig_server(k8s_cluster).rsplit(":", 1)[1])

    cluster_down()
    try:
        assert [p for p in pids if _alive(p)] == []
        assert not Path("/run/netns", NAMESPACE).exists()
        assert list(Path("/run/netns").glob("cni-*")) == []
        for key, value in recorded.items():
            now = Path("/proc/sys", *key.split(".")).read_text().strip()
            assert now == value, f"{key} is {now}, was {value} before the cluster"
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(cluster_dir()) not in mounts
        assert "/var/lib/kubelet" not in mounts
        assert not (cluster_dir() / "run").exists()
        assert not list(Path("/sys/fs/cgroup").glob("*/kubepods"))
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", api_port)) != 0
    finally:
        if k8s_cluster.reused:
            # The cluster was somebody's before this session: it goes back up as it was.
            cluster_up()


def _kubeconfig_server(cluster: Cluster) -> str:
    for line in cluster.kubeconfig.read_text().splitlines():
        if line.strip().startswith("server:"):
            return line.split("server:", 1)[1].strip()
    raise AssertionError(f"no server in {cluster.kubeconfig}")
