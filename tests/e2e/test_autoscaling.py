"""The chart's autoscaling on the real single-node cluster (tools/cluster): KEDA scales the workers
on the consumer lag of the tasks topic, a HorizontalPodAutoscaler scales them on CPU from
metrics-server. Both are built here from the Go module proxy and run as pods
(`make cluster-keda`, `make cluster-metrics-server`); the release is installed with
values-cluster.yaml plus values-autoscaling-keda.yaml or values-autoscaling-cpu.yaml.

Run with `make test-autoscaling` (KEDA's cold build is too long for `make test`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.e2e import scenarios as sc
from tests.e2e.autoscaling import ReplicaWatch, deployment_replicas, external_metric, pod_cpu_millicores
from tests.e2e.cluster import ROOT, cluster_dir, running_cluster
from tests.e2e.test_cluster import NS, RELEASE, ClusterE2E

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

HERE = Path(__file__).resolve().parent
KEDA_VALUES = yaml.safe_load((HERE / "values-autoscaling-keda.yaml").read_text())
PARTITIONS = int(KEDA_VALUES["config"]["partitions"])
LAG_THRESHOLD = int(KEDA_VALUES["autoscaling"]["keda"]["lagThreshold"])
MIN_REPLICAS = int(KEDA_VALUES["autoscaling"]["keda"]["minReplicas"])
CPU_VALUES = yaml.safe_load((HERE / "values-autoscaling-cpu.yaml").read_text())
# KEDA runs in its own namespace, so the broker advertises its full Service name (as Strimzi's do):
# a bare `kafka` would resolve in KEDA's namespace, not in the release's.
KAFKA_HOST = f"kafka.{NS}.svc.cluster.local"


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[sc.Report]:
    rep = sc.Report()
    yield rep
    text = rep.render()
    out = ROOT / ".taskq" / "e2e-autoscaling-report.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"\nautoscaling report (also in {out.relative_to(ROOT)}):\n{text}")


@pytest.fixture(scope="module")
def env() -> Iterator[ClusterE2E]:
    """The cluster with Kafka and Redis in the e2e namespace; each test installs the release its way."""
    with running_cluster() as cluster:
        e = ClusterE2E(cluster)
        try:
            e.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=150)
            e.kubectl("create", "namespace", NS)
            volumes = cluster_dir() / "run" / "volumes" / f"{NS}-{uuid.uuid4().hex[:8]}"
            backing = (HERE / "manifests" / "backing.yaml").read_text().replace("{volumes}", str(volumes))
            advertised = "{name: KAFKA_ADVERTISED_HOST, value: kafka}"
            assert advertised in backing, "manifests/backing.yaml no longer sets KAFKA_ADVERTISED_HOST as expected"
            e.kubectl("apply", "-n", NS, "-f", "-",
                      stdin=backing.replace(advertised, f"{{name: KAFKA_ADVERTISED_HOST, value: {KAFKA_HOST}}}"))
            sc.rollout(e, "statefulset/kafka")
            sc.rollout(e, "statefulset/redis")
            yield e
        finally:
            if not os.environ.get("TASKQ_CLUSTER_KEEP"):
                e.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", timeout=150, check=False)
            e.close()


@contextmanager
def _addon(env: ClusterE2E, name: str, apiservice: str) -> Iterator[None]:
    """An add-on installed with make for the block; one that was not there before is removed after."""
    present = env.kubectl("get", "apiservice", apiservice, "--ignore-not-found", timeout=30).strip() != ""
    res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), f"cluster-{name}"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"make cluster-{name} failed:\n{res.stdout}{res.stderr}"
    try:
        yield
    finally:
        if not present and not os.environ.get("TASKQ_CLUSTER_KEEP"):
            subprocess.run([str(ROOT / "tools" / "cluster" / "addons.sh"), "remove", name],
                           capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def keda(env: ClusterE2E) -> Iterator[None]:
    with _addon(env, "keda", "v1beta1.external.metrics.k8s.io"):
        yield
        # The ScaledObject carries KEDA's finalizer, so the release goes while KEDA still runs.
        env.kubectl("delete", "scaledobject", "--all", "-n", NS, "--wait=true", "--timeout=60s",
                    timeout=90, check=False)


@pytest.fixture(scope="module")
def metrics_server(env: ClusterE2E) -> Iterator[None]:
    with _addon(env, "metrics-server", "v1beta1.metrics.k8s.io"):
        yield


def _release(env: ClusterE2E, values: str) -> None:
    env.helm("upgrade", "--install", RELEASE, str(ROOT / "charts" / "taskq"), "-n", NS,
             "-f", str(HERE / "values-cluster.yaml"), "-f", str(HERE / values),
             "--wait", "--timeout", "10m", timeout=660)


def _settle_at(env: ClusterE2E, replicas: int, *, timeout: float) -> None:
    name = sc.worker_name(env)
    sc.wait_for(lambda: deployment_replicas(env, name) == replicas and len(sc.pods(env, "worker")) == replicas,
                timeout=timeout, what=f"{replicas} worker pod(s)")
    sc.wait_for(lambda: sc.workers_alive_with_partitions(env, replicas), timeout=120,
                what=f"{replicas} live worker(s) holding partitions")


def test_keda_scales_workers_on_lag_to_the_partition_count_and_back_without_losing_or_rerunning_tasks(
    env: ClusterE2E, keda: None, report: sc.Report
) -> None:
    _release(env, "values-autoscaling-keda.yaml")
    name = sc.worker_name(env)
    env.kubectl("wait", f"scaledobject/{name}", "-n", NS, "--for=condition=Ready", "--timeout=120s", timeout=130)
    hpa = json.loads(env.kubectl("get", "hpa", f"keda-hpa-{name}", "-n", NS, "-o", "json"))
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (MIN_REPLICAS, PARTITIONS), hpa["spec"]
    _settle_at(env, MIN_REPLICAS, timeout=180)
    assert external_metric(env, hpa) == 0, "lag on an empty topic"

    with ReplicaWatch(env, name) as log:
        submitted_at = time.time()
        # 200 tasks of 5 s: far more lag than 4 partitions x 10 per replica, and a tail long enough
        # (more than one 15 s HPA period) for pods to leave while tasks still run.
        ids = sc.submit(env, "sleep", [5], 200)
        # KEDA caps the lag it reports at lagThreshold x partitions, so the HPA can never ask for
        # more workers than there are partitions, whatever maxReplicaCount says.
        sc.wait_for(lambda: external_metric(env, hpa) == LAG_THRESHOLD * PARTITIONS, timeout=60,
                    what=f"KEDA to report the lag capped at {LAG_THRESHOLD} x {PARTITIONS}")
        sc.wait_for(lambda: deployment_replicas(env, name) == PARTITIONS, timeout=180,
                    what=f"KEDA to scale the workers to {PARTITIONS}")
        up = time.time() - submitted_at
        sc.wait_for(lambda: sc.workers_alive_with_partitions(env, PARTITIONS), timeout=120,
                    what=f"{PARTITIONS} workers holding partitions")
        recs = sc.wait_terminal(env, ids, timeout=900)
        _settle_at(env, MIN_REPLICAS, timeout=300)
        down = time.time() - submitted_at
        assert external_metric(env, hpa) == 0, "lag after every task finished"

    dups, _ = sc.check_outcome(recs)
    assert log.peak == PARTITIONS, log.changes
    peaked = next(t for t, n in log.changes if n == PARTITIONS)
    last_done = max(float(r["finished_at"]) for r in recs.values())
    left_at = log.first_below(PARTITIONS, after=peaked)
    assert left_at is not None and left_at < last_done, (
        f"no worker left while tasks still ran: {log.changes}, last task finished at {last_done}")
    remaining = {p["metadata"]["name"] for p in sc.pods(env, "worker")}
    ran_by_gone = sum(1 for r in recs.values() if r["worker"] not in remaining)
    workers_used = len({r["worker"] for r in recs.values()})
    assert workers_used >= PARTITIONS, f"only {workers_used} pods ran tasks"
    report.add(sc.Row("KEDA: lag 1 -> 4 -> 1 (4 partitions)", len(ids), 0, dups, up,
                      note=f"replicas {' '.join(str(n) for _, n in log.changes)}; at 4 after {up:.0f}s, "
                           f"back at 1 after {down:.0f}s; {ran_by_gone} tasks ran on pods since removed"))


def test_a_cpu_hpa_on_metrics_server_scales_busy_workers_up_and_idle_ones_back_down(
    env: ClusterE2E, metrics_server: None, report: sc.Report
) -> None:
    env.kubectl("apply", "-n", NS, "-f", str(HERE / "manifests" / "cpu-tasks.yaml"))
    _release(env, "values-autoscaling-cpu.yaml")
    name = sc.worker_name(env)
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=worker"
    hpa_name = name

    def cpu_target_known() -> bool:
        hpa = json.loads(env.kubectl("get", "hpa", hpa_name, "-n", NS, "-o", "json"))
        current = hpa.get("status", {}).get("currentMetrics") or []
        return any(m.get("resource", {}).get("current", {}).get("averageUtilization") is not None for m in current)

    sc.wait_for(cpu_target_known, timeout=180, what="the HPA to read the workers' CPU from metrics-server")
    try:
        _settle_at(env, 1, timeout=300)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker CPU now: {pod_cpu_millicores(env, selector)} (millicores)") from None
    idle = pod_cpu_millicores(env, selector)

    with ReplicaWatch(env, name) as log:
        started = time.time()
        # CPU-bound tasks, the load a CPU HPA is for: 180 x 0.25 s of CPU keep one worker at its
        # limit for about 110 s, longer than metrics-server (15 s) and the HPA (15 s) take to react.
        ids = sc.submit(env, "spin", [0.25], 180)
        sc.wait_for(lambda: deployment_replicas(env, name) > 1, timeout=100,
                    what="a CPU-driven scale-up while one worker spins", interval=1)
        up = time.time() - started
        busy = pod_cpu_millicores(env, selector)
        recs = sc.wait_terminal(env, ids, timeout=600)
        _settle_at(env, 1, timeout=420)
        down = time.time() - started

    dups, _ = sc.check_outcome(recs)
    assert 1 < log.peak <= PARTITIONS, log.changes
    assert len({r["worker"] for r in recs.values()}) > 1, "the workers added by the HPA ran no task"
    resources = CPU_VALUES["worker"]["resources"]
    report.add(sc.Row("CPU HPA (metrics-server): 1 -> n -> 1", len(ids), 0, dups, up,
                      note=f"replicas {' '.join(str(n) for _, n in log.changes)}; idle CPU "
                           f"{', '.join(f'{v:.0f}m' for v in idle.values())}, busy "
                           f"{', '.join(f'{v:.0f}m' for v in busy.values())} (request "
                           f"{resources['requests']['cpu']}, limit {resources['limits']['cpu']}, target "
                           f"{CPU_VALUES['autoscaling']['hpa']['targetCPUUtilizationPercentage']} %); "
                           f"scaled up after {up:.0f}s, back at 1 after {down:.0f}s"))
