"""The chart's NetworkPolicies, enforced: the e2e cluster runs kube-router's network policy
controller (iptables and ipsets; tools/cluster/addons.sh netpol) beside its bridge CNI, so a policy
the chart renders is a policy the packets meet.

A pod of another namespace (the worker image, idle) tries each port: a worker pod's metrics port
and the API port answer (their policies let any source in by default), a port a worker pod opens
beyond its metrics port is dropped, and the same port answers once the worker's policy is deleted
— so the drop is the chart's policy, not the network — and is dropped again once it is back.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.e2e import scenarios as sc

INTRUDER_NS = "taskq-e2e-intruder"
EXTRA_PORT = 8765
# Prints "open" or the reason it is not: kubectl exec's output is all a scenario sees.
PROBE = ("import socket, sys\n"
         "try:\n"
         "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
         "    print('open')\n"
         "except OSError as exc:\n"
         "    print(f'closed: {exc}')\n")
# The kernel completes handshakes up to the backlog, so listening is enough to be reached.
LISTEN = ("import socket, time\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('0.0.0.0', {EXTRA_PORT})); s.listen(64); print('listening', flush=True); time.sleep(300)\n")


def probe(env: sc.E2E, namespace: str, pod: str, ip: str, port: int) -> str:
    return env.kubectl("exec", "-n", namespace, pod, "--", "python", "-c", PROBE, ip, str(port), timeout=30).strip()


@contextmanager
def intruder(env: sc.E2E, image: str) -> Iterator[str]:
    """An idle pod of the worker image in a namespace of its own; yields its name."""
    env.kubectl("create", "namespace", INTRUDER_NS)
    try:
        env.kubectl("run", "intruder", "-n", INTRUDER_NS, f"--image={image}", "--image-pull-policy=Never",
                    "--restart=Never", "--command", "--", "python", "-c", "import time; time.sleep(3600)")
        env.kubectl("wait", "-n", INTRUDER_NS, "--for=condition=Ready", "pod/intruder", "--timeout=120s", timeout=130)
        yield "intruder"
    finally:
        env.kubectl("delete", "namespace", INTRUDER_NS, "--wait=true", "--timeout=120s", timeout=150, check=False)


@contextmanager
def listener(env: sc.E2E, kubectl: list[str], pod: str) -> Iterator[None]:
    """A socket listening on EXTRA_PORT inside ``pod`` (a port no policy of the chart opens);
    ``kubectl`` is the command line that reaches the cluster."""
    proc = subprocess.Popen(
        [*kubectl, "exec", "-n", env.namespace, pod, "--", "python", "-c", LISTEN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "listening" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        sc.wait_for(ready.is_set, timeout=60, what=f"a listener on {pod}:{EXTRA_PORT}")
        yield
    finally:
        proc.kill()
        proc.wait(timeout=30)


def enforced(env: sc.E2E, report: sc.Report, *, image: str, kubectl: list[str]) -> None:
    policy = f"{env.release}-worker"
    saved: dict[str, Any] = json.loads(env.kubectl("get", "networkpolicy", policy, "-n", env.namespace, "-o", "json"))
    worker = sc.ready_pods(env, "worker")[0]
    api = sc.ready_pods(env, "api")[0]
    wip, aip = worker["status"]["podIP"], api["status"]["podIP"]
    metrics = int(worker["metadata"]["annotations"]["prometheus.io/port"])
    api_port = next(p["containerPort"] for c in api["spec"]["containers"] for p in c.get("ports", [])
                    if p.get("name") == "http")
    name = worker["metadata"]["name"]
    seen: dict[str, str] = {}
    with intruder(env, image) as pod, listener(env, kubectl, name):
        seen["worker metrics"] = probe(env, INTRUDER_NS, pod, wip, metrics)
        seen["api"] = probe(env, INTRUDER_NS, pod, aip, api_port)
        seen["worker extra, policy on"] = probe(env, INTRUDER_NS, pod, wip, EXTRA_PORT)
        env.kubectl("delete", "networkpolicy", policy, "-n", env.namespace)
        try:
            sc.wait_for(lambda: probe(env, INTRUDER_NS, pod, wip, EXTRA_PORT) == "open", timeout=60,
                        what="the extra port to answer once the worker policy is deleted")
            seen["worker extra, policy deleted"] = "open"
        finally:
            for k in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
                saved["metadata"].pop(k, None)
            env.kubectl("apply", "-n", env.namespace, "-f", "-", stdin=json.dumps(saved))
        sc.wait_for(lambda: probe(env, INTRUDER_NS, pod, wip, EXTRA_PORT) != "open", timeout=60,
                    what="the extra port to be dropped again once the policy is back")
        seen["worker extra, policy back"] = probe(env, INTRUDER_NS, pod, wip, EXTRA_PORT)
        # Still listening: the port is closed to the intruder by the policy, not by a listener gone.
        seen["worker extra, from the pod itself"] = probe(env, env.namespace, name, "127.0.0.1", EXTRA_PORT)
    assert seen["worker metrics"] == "open", seen
    assert seen["api"] == "open", seen
    assert seen["worker extra, policy on"].startswith("closed"), seen
    assert seen["worker extra, policy back"].startswith("closed"), seen
    assert seen["worker extra, from the pod itself"] == "open", seen
    report.add(sc.Row("NetworkPolicy enforced (kube-router)", 0, 0, 0,
                      note=f"from another namespace: worker metrics and API open; worker :{EXTRA_PORT} "
                           f"dropped by the chart's policy, open while it was deleted, dropped once back"))
