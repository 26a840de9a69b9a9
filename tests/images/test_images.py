"""Smoke test of the built images against the local Kafka and Redis (`make test-images`).

The API and worker containers run read-only as user 10001 on the host network: submit through
the API container, see the worker container run it, then `docker stop` the worker mid-task and
see it finish the task first (no re-run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from taskq.devstack import free_port
from taskq.settings import Settings
from tests.helpers import settings_env, wait_for

TAG = os.environ.get("TASKQ_IMAGE_TAG", "dev")


def _docker_ready() -> str | None:
    if not shutil.which("docker"):
        return "docker CLI not found"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine is running (make test-images starts one)"
    for image in ("api", "worker"):
        if subprocess.run(["docker", "image", "inspect", f"taskq-{image}:{TAG}"], capture_output=True).returncode:
            return f"image taskq-{image}:{TAG} not built (make images)"
    return None


pytestmark = pytest.mark.skipif(_docker_ready() is not None, reason=f"image smoke test: {_docker_ready()}")


class Containers:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def run(self, image: str, settings: Settings, *args: str, env: dict[str, str] | None = None) -> str:
        envs = {k: v for k, v in settings_env(settings).items() if k.startswith("TASKQ_") and k != "TASKQ_KAFKA_JARS"}
        envs.update(env or {})
        cmd = ["docker", "run", "-d", "--network", "host", "--read-only", "--user", "10001:10001",
               "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        for k, v in envs.items():
            cmd += ["-e", f"{k}={v}"]
        cid = subprocess.run([*cmd, f"taskq-{image}:{TAG}", *args], capture_output=True, text=True,
                             check=True).stdout.strip()
        self.ids.append(cid)
        return cid

    def logs(self, cid: str) -> str:
        res = subprocess.run(["docker", "logs", cid], capture_output=True, text=True)
        return res.stdout + res.stderr

    def remove_all(self) -> None:
        for cid in self.ids:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


@pytest.fixture
def containers() -> Iterator[Containers]:
    c = Containers()
    yield c
    c.remove_all()


def test_api_and_worker_images_run_tasks_and_stop_gracefully(settings: Settings, containers: Containers) -> None:
    from taskq.store import Store

    api_port, metrics_port = free_port(), free_port()
    api = containers.run("api", settings, "api", "--host", "127.0.0.1", "--port", str(api_port))
    worker = containers.run("worker", settings, "worker", "--metrics-port", str(metrics_port),
                            env={"TASKQ_WORKER_ID": "container-w1", "TASKQ_LOG_ARGS": "true"})
    store = Store(settings)
    wait_for(lambda: any(w.id == "container-w1" and w.status == "alive" and w.partitions for w in store.workers()),
             timeout=90, what=f"the worker container to join\n{containers.logs(worker)}")
    http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
    wait_for(lambda: _ok(http), timeout=60, what=f"the API container\n{containers.logs(api)}")

    tid = http.post("/api/tasks", json={"task": "add", "args": [1, 2]}).json()["id"]
    wait_for(lambda: http.get(f"/api/tasks/{tid}").json()["status"] == "success", timeout=30, what="add 1 2")
    assert http.get(f"/api/tasks/{tid}").json()["worker"] == "container-w1"
    assert f"[container-w1] Received Task ID: {tid} | Task: add | Args: [1, 2]" in containers.logs(worker)
    assert "taskq_tasks_started_total" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text

    # A time limit runs the task in a forkserver child: it must work on a read-only root filesystem.
    limited = http.post("/api/tasks", json={"task": "add", "args": [2, 2], "timeout": 5}).json()["id"]
    wait_for(lambda: http.get(f"/api/tasks/{limited}").json()["status"] == "success", timeout=30,
             what=f"a task with a time limit\n{containers.logs(worker)}")

    slow = http.post("/api/tasks", json={"task": "sleep", "args": [3]}).json()["id"]
    wait_for(lambda: http.get(f"/api/tasks/{slow}").json()["status"] == "running", timeout=30, what="sleep to start")
    subprocess.run(["docker", "stop", "-t", "30", worker], check=True, capture_output=True)
    rec = http.get(f"/api/tasks/{slow}").json()
    assert rec["status"] == "success" and rec["attempts"] == 1 and rec["worker"] == "container-w1"
    code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", worker], capture_output=True,
                          text=True).stdout.strip()
    logs = containers.logs(worker)
    assert code == "0", logs
    assert "SIGTERM received: finishing in-flight tasks" in logs and "[container-w1] stopped" in logs
    assert {w.id: w.status for w in store.workers()}["container-w1"] == "stopped"


def _ok(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False
