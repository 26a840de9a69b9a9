"""What the autoscaling tests read from the cluster: the Deployment's replica count as the
autoscaler sets it (every change, from a watch), the HPA behind a ScaledObject, and the external
or resource metric that HPA acts on, as the API server serves it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from tests.e2e import scenarios as sc

_SUFFIXES = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("0.001"), "": Decimal(1),
             "k": Decimal(1000), "M": Decimal(10**6), "G": Decimal(10**9)}


def quantity(text: str) -> float:
    """A Kubernetes quantity as metrics APIs write it ("40", "33500m", "12345678n") as a number."""
    digits = text.rstrip("".join(k for k in _SUFFIXES if k))
    return float(Decimal(digits) * _SUFFIXES[text[len(digits):]])


@dataclass
class ReplicaLog:
    """Every value the Deployment's spec.replicas takes, with when it took it (epoch seconds, like
    the task records' started_at and finished_at)."""

    changes: list[tuple[float, int]] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max(n for _, n in self.changes)

    def first_below(self, replicas: int, *, after: float) -> float | None:
        """When spec.replicas first went below ``replicas`` after ``after``."""
        return next((t for t, n in self.changes if n < replicas and t >= after), None)


class ReplicaWatch:
    """Watches one Deployment in a thread, so no short-lived replica count is missed between polls."""

    def __init__(self, env: Any, deployment: str) -> None:
        from kubernetes import client, watch

        self.log = ReplicaLog()
        self._apps = client.AppsV1Api(env.cluster.api_client())
        self._watch = watch.Watch()
        self._namespace = env.namespace
        self._selector = f"metadata.name={deployment}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReplicaLog:
        self._thread.start()
        sc.wait_for(lambda: self.log.changes, timeout=30, what="the Deployment watch to start")
        return self.log

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watch.stop()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        # A watch ends after its server-side timeout (or when stop() cuts it): the loop opens the
        # next one from the current state until the block ends.
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(self._apps.list_namespaced_deployment, self._namespace,
                                                field_selector=self._selector, timeout_seconds=60):
                    replicas = int(event["object"].spec.replicas or 0)
                    if not self.log.changes or self.log.changes[-1][1] != replicas:
                        self.log.changes.append((time.time(), replicas))
                    if self._stop.is_set():
                        return
            except Exception:  # a cut connection: reopen unless stopping
                if self._stop.is_set():
                    return
                time.sleep(0.5)


def deployment_replicas(env: Any, name: str) -> int:
    return int(env.kubectl("get", "deployment", name, "-n", env.namespace, "-o", "jsonpath={.spec.replicas}") or 0)


def external_metric(env: Any, hpa: dict[str, Any]) -> float:
    """The value of the HPA's first external metric, read from external.metrics.k8s.io as the HPA does."""
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]
    labels = ",".join(f"{k}={v}" for k, v in metric["selector"]["matchLabels"].items())
    path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{env.namespace}/{metric['name']}"
            f"?labelSelector={quote(labels)}")
    items = json.loads(env.kubectl("get", "--raw", path))["items"]
    assert len(items) == 1, items
    return quantity(items[0]["value"])


def pod_cpu_millicores(env: Any, selector: str) -> dict[str, float]:
    """CPU use of the selected pods from metrics.k8s.io (what a CPU HPA reads), in millicores."""
    path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{env.namespace}/pods?labelSelector={quote(selector)}"
    items = json.loads(env.kubectl("get", "--raw", path))["items"]
    return {p["metadata"]["name"]: 1000 * sum(quantity(c["usage"]["cpu"]) for c in p["containers"]) for p in items}
