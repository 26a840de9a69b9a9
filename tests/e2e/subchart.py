"""taskq as a subchart: a throwaway parent chart that depends on charts/taskq, installed next to
the suite's own release and sharing its Kafka and Redis (own topics, consumer group and Redis
key prefix, so neither release sees the other's tasks or workers)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.e2e import scenarios as sc

CHART = Path(__file__).resolve().parents[2] / "charts" / "taskq"
PARENT = "platform"
# The cluster's containerd holds the images as docker.io/library/taskq-*:e2e (how Docker names
# them), so this registry names the very images the suite imported, and nothing is pulled.
REGISTRY = "docker.io/library"


def parent_chart(folder: Path) -> Path:
    """A parent chart in ``folder`` with taskq as a file:// dependency and a `global:` block."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    parent = folder / PARENT
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": PARENT, "version": "1.0.0", "description": "A parent of taskq.",
        "dependencies": [{"name": "taskq", "version": version, "repository": f"file://{CHART}"}],
    }))
    (parent / "values.yaml").write_text(yaml.safe_dump({
        # Parents put keys of their own into global too; taskq's schema must let them through.
        "global": {"imageRegistry": REGISTRY, "environment": "e2e"},
        "taskq": {
            "image": {"repository": "taskq", "tag": "e2e", "pullPolicy": "Never"},
            "api": {"replicas": 1, "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}}},
            "worker": {"replicas": 1, "concurrency": 1,
                       "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}}},
            "config": {"tasksTopic": f"{PARENT}.tasks", "deadTopic": f"{PARENT}.dead",
                       "groupId": f"{PARENT}-workers", "prefix": f"{PARENT}:", "partitions": 2},
            "kafka": {"strimzi": {"enabled": False}, "bootstrapServers": "kafka:9092"},
            "redis": {"operator": {"enabled": False}, "url": "redis://redis:6379/0"},
        },
    }))
    return parent


class SubchartRelease:
    """The parent chart's release, seen the way the scenarios see the suite's own (``sc.E2E``)."""

    def __init__(self, env: Any, api_service: str, token: str) -> None:
        self.namespace = env.namespace
        self.release = PARENT
        self.http = env.http
        self.kubectl = env.kubectl
        self._api_service = api_service
        self._headers = {"Authorization": f"Bearer {token}"}

    def api_url(self) -> str:
        ip = self.kubectl("get", "svc", self._api_service, "-n", self.namespace, "-o", "jsonpath={.spec.clusterIP}")
        return f"http://{ip}:80"

    def get(self, path: str) -> Any:
        r = self.http.request("GET", self.api_url() + path, headers=self._headers)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any) -> Any:
        r = self.http.request("POST", self.api_url() + path, json=body, headers=self._headers)
        assert r.status_code == 202, (r.status_code, r.text)
        return r.json()


def install_run_uninstall(env: Any, folder: Path, report: sc.Report) -> None:
    started = time.monotonic()
    parent = parent_chart(folder)
    env.helm("dependency", "build", "--skip-refresh", str(parent), timeout=60)
    api_service = f"{PARENT}-taskq-api"
    try:
        env.helm("install", PARENT, str(parent), "-n", env.namespace, "--wait", "--timeout", "5m", timeout=330)
        installed = time.monotonic() - started
        token = base64.b64decode(env.kubectl("get", "secret", f"{PARENT}-taskq-api-token", "-n", env.namespace,
                                             "-o", "jsonpath={.data.token}")).decode()
        rel = SubchartRelease(env, api_service, token)
        api, workers = sc.ready_pods(rel, "api"), sc.ready_pods(rel, "worker")
        assert (len(api), len(workers)) == (1, 1), (api, workers)
        assert workers[0]["metadata"]["name"].startswith(f"{PARENT}-worker-"), workers[0]["metadata"]["name"]
        images = {c["image"] for p in api + workers for c in p["spec"]["containers"]}
        assert images == {f"{REGISTRY}/taskq-api:e2e", f"{REGISTRY}/taskq-worker:e2e"}, images
        # The API accepts a task name only once a live worker has advertised it.
        sc.wait_for(lambda: any(w["status"] == "alive" and w.get("partitions") for w in rel.get("/api/workers")),
                    timeout=90, what="the subchart's worker to hold partitions")
        tid = rel.post("/api/tasks", {"task": "add", "args": [20, 22]})["id"]
        done: dict[str, Any] = {}

        def finished() -> bool:
            done.update(rel.get(f"/api/tasks/{tid}"))
            return done["status"] in sc.TERMINAL

        sc.wait_for(finished, timeout=60, what=f"task {tid} of the subchart release to finish")
        assert (done["status"], done["result"]) == ("success", 42), done
        assert done["worker"] == workers[0]["metadata"]["name"], done
        ran = time.monotonic() - started
    finally:
        env.helm("uninstall", PARENT, "-n", env.namespace, "--ignore-not-found", "--wait", "--timeout", "2m",
                 timeout=150)
        # The token Secret outlives an uninstall on purpose (helm.sh/resource-policy: keep).
        env.kubectl("delete", "secret", f"{PARENT}-taskq-api-token", "-n", env.namespace, "--ignore-not-found")
    left: list[str] = []

    def nothing_left() -> bool:
        out = env.kubectl("get", "deployments,replicasets,pods,services,configmaps,secrets,serviceaccounts,"
                          "poddisruptionbudgets", "-n", env.namespace, "-l", f"app.kubernetes.io/instance={PARENT}",
                          "-o", "json")
        # ReplicaSets and pods go after their Deployment, by the garbage collector; terminating ones count as gone.
        left[:] = [f"{o['kind']}/{o['metadata']['name']}" for o in json.loads(out)["items"]
                   if not o["metadata"].get("deletionTimestamp")]
        return not left

    try:
        sc.wait_for(nothing_left, timeout=60, what=f"helm uninstall {PARENT} to remove every object")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still there: {left}") from None
    report.add(sc.Row("helm install of a parent chart (subchart)", 1, 0, 0, installed,
                      note=f"global.imageRegistry={REGISTRY}; ready after {installed:.0f}s, task done after "
                           f"{ran:.0f}s, uninstalled after {time.monotonic() - started:.0f}s"))
