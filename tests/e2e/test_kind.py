"""End to end on kind: Strimzi + redis-operator + the chart; delete pods and check nothing is lost.

Runs with `make e2e` where Docker and kind exist (not part of `make test`). Elsewhere it skips with
one line. The same behaviours run against the local stack in tests/integration (pods = processes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = os.environ.get("TASKQ_E2E_CLUSTER", "taskq-e2e")
NS = "taskq-e2e"
RELEASE = "tq"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (shutil.which("docker") and shutil.which("kind") and shutil.which("helm") and shutil.which("kubectl")),
        reason="e2e needs docker, kind, helm and kubectl on PATH (run 'make e2e' on a machine that has them)",
    ),
]


def sh(*cmd: str, timeout: float = 900, check: bool = True) -> str:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from kubernetes import client, config

    if CLUSTER not in sh("kind", "get", "clusters").split():
        sh("kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s")
    for image in ("api", "worker"):
        sh("docker", "build", "-f", str(ROOT / "images" / image / "Dockerfile"), "-t", f"taskq-{image}:e2e", str(ROOT))
        sh("kind", "load", "docker-image", f"taskq-{image}:e2e", "--name", CLUSTER)
    sh("kubectl", "create", "namespace", NS, check=False)
    sh("helm", "upgrade", "--install", "strimzi", "oci://quay.io/strimzi-helm/strimzi-kafka-operator",
       "-n", NS, "--set", f"watchNamespaces={{{NS}}}", "--wait")
    sh("helm", "repo", "add", "ot-helm", "https://ot-container-kit.github.io/helm-charts/", check=False)
    sh("helm", "upgrade", "--install", "redis-operator", "ot-helm/redis-operator", "-n", NS, "--wait")
    sh("helm", "upgrade", "--install", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS,
       "-f", str(ROOT / "tests" / "e2e" / "values-kind.yaml"))
    sh("kubectl", "wait", f"kafka/{RELEASE}-taskq-kafka", "--for=condition=Ready", "-n", NS, "--timeout=900s")
    sh("kubectl", "rollout", "status", f"deployment/{RELEASE}-worker", "-n", NS, "--timeout=600s")
    sh("kubectl", "rollout", "status", f"deployment/{RELEASE}-taskq-api", "-n", NS, "--timeout=600s")
    config.load_kube_config(context=f"kind-{CLUSTER}")
    yield client
    if not os.environ.get("TASKQ_E2E_KEEP"):
        sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)


@pytest.fixture(scope="module")
def api(cluster: object) -> Iterator[str]:
    port = 18080
    pf = subprocess.Popen(["kubectl", "port-forward", "-n", NS, f"svc/{RELEASE}-taskq-api", f"{port}:80"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(60):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2)
            break
        except OSError:
            time.sleep(1)
    yield base
    pf.terminate()


def call(base: str, path: str, body: object | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=30))


def wait_terminal(base: str, ids: list[str], timeout: float) -> dict[str, dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline and len(done) < len(ids):
        for tid in ids:
            if tid not in done:
                t = call(base, f"/api/tasks/{tid}")
                if t["status"] in ("success", "failed", "dead", "cancelled"):  # type: ignore[index]
                    done[tid] = t  # type: ignore[assignment]
        time.sleep(1)
    return done


def worker_pods(cluster: object) -> list[object]:
    core = cluster.CoreV1Api()  # type: ignore[attr-defined]
    sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=worker"
    return [p for p in core.list_namespaced_pod(NS, label_selector=sel).items if p.status.phase == "Running"]


def test_tasks_of_a_deleted_worker_pod_finish_on_other_pods(cluster: object, api: str) -> None:
    ids = call(api, "/api/tasks/batch", [{"task": "sleep", "args": [2]} for _ in range(300)])["ids"]  # type: ignore[index]
    time.sleep(8)
    victim = worker_pods(cluster)[0].metadata.name  # type: ignore[attr-defined]
    cluster.CoreV1Api().delete_namespaced_pod(victim, NS)  # type: ignore[attr-defined]
    done = wait_terminal(api, ids, timeout=900)
    assert len(done) == 300, f"{300 - len(done)} tasks never finished"
    assert all(t["status"] == "success" for t in done.values())
    by_victim = [t for t in done.values() if any(h["worker"] == victim for h in t["history"])]
    assert by_victim and all(t["worker"] != victim or t["attempts"] == 1 for t in by_victim)


def test_scaling_the_worker_deployment_to_five_brings_five_busy_workers(cluster: object, api: str) -> None:
    apps = cluster.AppsV1Api()  # type: ignore[attr-defined]
    apps.patch_namespaced_deployment_scale(f"{RELEASE}-worker", NS, {"spec": {"replicas": 5}})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        alive = [w for w in call(api, "/api/workers") if w["status"] == "alive" and w["partitions"]]  # type: ignore[union-attr, index]
        if len(alive) >= 5:
            break
        time.sleep(2)
    assert len(alive) >= 5
    ids = call(api, "/api/tasks/batch", [{"task": "sleep", "args": [0.5]} for _ in range(200)])["ids"]  # type: ignore[index]
    done = wait_terminal(api, ids, timeout=600)
    names = {p.metadata.name for p in worker_pods(cluster)}  # type: ignore[attr-defined]
    assert len({t["worker"] for t in done.values()} & names) >= 5


def test_the_api_service_recovers_after_its_pod_is_deleted(cluster: object, api: str) -> None:
    core = cluster.CoreV1Api()  # type: ignore[attr-defined]
    sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=api"
    for p in core.list_namespaced_pod(NS, label_selector=sel).items:
        core.delete_namespaced_pod(p.metadata.name, NS)
    sh("kubectl", "rollout", "status", f"deployment/{RELEASE}-taskq-api", "-n", NS, "--timeout=300s")
    out = sh("kubectl", "run", "probe", "-n", NS, "--rm", "-i", "--restart=Never", "--image=taskq-api:e2e",
             "--image-pull-policy=Never", "--command", "--", "python", "-c",
             f"import urllib.request;print(urllib.request.urlopen('http://{RELEASE}-taskq-api/readyz').read())")
    assert '"status":"ok"' in out
