"""The same e2e scenarios on kind, with the real operators: Strimzi + OT redis-operator + the chart.

Runs with `make e2e` where Docker, kind, helm and kubectl exist and the operators' charts and
images can be pulled (not on this machine: see tests/e2e/test_cluster.py for the cluster that
runs here). Elsewhere it skips with one line. HTTP goes from threads inside the kind node's
network namespace, exactly as on the single-node cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import scenarios as sc
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

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLUSTER = os.environ.get("TASKQ_E2E_CLUSTER", "taskq-e2e")
NODE = f"{CLUSTER}-control-plane"
NS = "taskq-e2e"
RELEASE = "taskq"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        not (shutil.which("docker") and shutil.which("kind") and shutil.which("helm") and shutil.which("kubectl")),
        reason="kind e2e needs docker, kind, helm and kubectl on PATH (run 'make e2e' on a machine that has them)",
    ),
]


def sh(*cmd: str, timeout: float = 900, check: bool = True, stdin: str | None = None) -> str:
    res = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


class KindE2E:
    def __init__(self) -> None:
        self.namespace = NS
        self.release = RELEASE
        pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", NODE).strip()
        self.netns = Path(f"/proc/{pid}/ns/net")
        self.token: str | None = None
        self.http = NetnsHttp(self.netns)
        self._api: str | None = None

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> str:
        return sh("kubectl", "--context", f"kind-{CLUSTER}", *args, timeout=timeout, check=check, stdin=stdin)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return sh("helm", "--kube-context", f"kind-{CLUSTER}", *args, timeout=timeout)

    def api_url(self) -> str:
        if self._api is None:
            ip = self.kubectl("get", "svc", f"{RELEASE}-api", "-n", NS, "-o", "jsonpath={.spec.clusterIP}")
            self._api = f"http://{ip}:80"
        return self._api

    def kill_container(self, pod: str, container: str) -> None:
        status = json.loads(self.kubectl("get", "pod", pod, "-n", NS, "-o", "json"))["status"]
        cid = next(c["containerID"] for c in status["containerStatuses"] if c["name"] == container).split("://")[1]
        sh("docker", "exec", NODE, "sh", "-c",
           f"kill -9 $(crictl inspect --output go-template --template '{{{{.info.pid}}}}' {cid})")

    def tag_images(self, tag: str) -> None:
        for image in ("api", "worker"):
            sh("docker", "exec", NODE, "ctr", "-n", "k8s.io", "images", "tag", "--force",
               f"docker.io/library/taskq-{image}:e2e", f"docker.io/library/taskq-{image}:{tag}")

    def helm_upgrade(self, *set_values: str) -> None:
        sets = [a for v in set_values for a in ("--set", v)]
        self.helm("upgrade", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS, "-f", str(HERE / "values-kind.yaml"),
                  *sets, "--wait", "--timeout", "15m", timeout=960)

    def restart(self, backing: str) -> None:
        if backing == "kafka":
            self.kubectl("delete", "pod", "-n", NS, "-l", f"strimzi.io/cluster={RELEASE}-kafka", "--wait=true",
                         timeout=300)
            self.kubectl("wait", f"kafka/{RELEASE}-kafka", "--for=condition=Ready", "-n", NS, "--timeout=600s",
                         timeout=620)
        else:
            self.kubectl("delete", "pod", f"{RELEASE}-redis-0", "-n", NS, "--wait=true", timeout=300)
            self.kubectl("wait", f"pod/{RELEASE}-redis-0", "--for=condition=Ready", "-n", NS, "--timeout=300s",
                         timeout=320)

    def ingress_address(self) -> str:
        return self.kubectl("get", "svc", "traefik", "-n", "traefik", "-o", "jsonpath={.spec.clusterIP}")

    def tls_http(self, ca: Path) -> NetnsHttp:
        return NetnsHttp(self.netns, threads=4, verify=ssl.create_default_context(cafile=str(ca)))

    def browser_executable(self, folder: Path) -> str:
        wrapper = folder / "chromium-in-kind"
        wrapper.write_text(f'#!/bin/sh\nexec nsenter --net={self.netns} -- /usr/bin/chromium "$@"\n')
        wrapper.chmod(0o755)
        return str(wrapper)


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[sc.Report]:
    rep = sc.Report()
    yield rep
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line("\ne2e report:\n" + rep.render())


@pytest.fixture(scope="module")
def env() -> Iterator[KindE2E]:
    if CLUSTER not in sh("kind", "get", "clusters").split():
        sh("kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s")
    for image in ("api", "worker"):
        sh("docker", "build", "-f", str(ROOT / "images" / image / "Dockerfile"), "-t", f"taskq-{image}:e2e", str(ROOT))
        sh("kind", "load", "docker-image", f"taskq-{image}:e2e", "--name", CLUSTER)
    e = KindE2E()
    e.kubectl("create", "namespace", NS, check=False)
    # The ingress controller the UI is reached through: Traefik's own chart (IngressClass traefik).
    sh("helm", "repo", "add", "traefik", "https://traefik.github.io/charts", check=False)
    e.helm("upgrade", "--install", "traefik", "traefik/traefik", "-n", "traefik", "--create-namespace",
           "--set", "service.type=ClusterIP", "--wait")
    e.helm("upgrade", "--install", "strimzi", "oci://quay.io/strimzi-helm/strimzi-kafka-operator",
           "-n", NS, "--set", f"watchNamespaces={{{NS}}}", "--wait")
    sh("helm", "repo", "add", "ot-helm", "https://ot-container-kit.github.io/helm-charts/", check=False)
    e.helm("upgrade", "--install", "redis-operator", "ot-helm/redis-operator", "-n", NS, "--wait")
    e.helm("upgrade", "--install", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS,
           "-f", str(HERE / "values-kind.yaml"))
    e.kubectl("wait", f"kafka/{RELEASE}-kafka", "--for=condition=Ready", "-n", NS, "--timeout=900s", timeout=920)
    sc.rollout(e, f"deployment/{RELEASE}-worker", timeout=600)
    sc.rollout(e, f"deployment/{RELEASE}-api", timeout=600)
    yield e
    e.http.close()
    if not os.environ.get("TASKQ_E2E_KEEP"):
        sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)
