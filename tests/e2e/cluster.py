"""The single-node Kubernetes cluster of tools/cluster, from pytest.

`make cluster` starts it (containerd and every component inside the network namespace
taskq-k8s, the API server forwarded to the host's loopback); `make cluster-down` removes it.
`running_cluster()` reuses a running cluster and leaves it running, or starts one and tears it
down at the end, failed tests or not (`TASKQ_CLUSTER_KEEP=1` keeps it):

    @pytest.fixture(scope="session")
    def k8s() -> Iterator[Cluster]:
        with running_cluster() as cluster:
            yield cluster
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "taskq-k8s"
# A cold `make cluster` builds Kubernetes from source first (about 8 minutes on two cores).
UP_TIMEOUT = 1800.0


def cluster_dir() -> Path:
    """Where `make cluster` keeps binaries, images and the running cluster's state."""
    if env := os.environ.get("TASKQ_CLUSTER_DIR"):
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("CACHE") or cache / "taskq") / "cluster"


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its kubeconfig, and kubectl of the cluster's own version."""

    kubeconfig: Path
    reused: bool

    @property
    def kubectl_path(self) -> Path:
        return cluster_dir() / "bin" / "kubectl"

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> str:
        res = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=timeout,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        return res.stdout

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for this cluster."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


def can_host_cluster() -> str | None:
    """None when this machine can run the cluster, else one line saying why not."""
    if os.geteuid() != 0:
        return "the cluster needs root (network namespace, containerd, pod cgroups)"
    cgroup = Path("/sys/fs/cgroup")
    if not (cgroup / "memory").is_dir() and "memory" not in _read(cgroup / "cgroup.controllers"):
        return "no cgroup memory controller under /sys/fs/cgroup"
    if not Path("/proc/sys/net").is_dir() or shutil.which("ip") is None:
        return "no iproute2 'ip' for the cluster's network namespace"
    if shutil.which("containerd") is None and shutil.which("apt-get") is None:
        return "containerd is not installed and apt-get is not there to install it"
    if shutil.which("go") is None and not (cluster_dir() / "bin" / "k8s").exists():
        return "no Go toolchain to build Kubernetes, and no cached build in " + str(cluster_dir() / "bin")
    if shutil.which("make") is None:
        return "make is not installed"
    return None


def cluster_up() -> Cluster:
    """Starts the cluster (or finds the running one) with `make cluster`."""
    reused = Path("/run/netns", NAMESPACE).exists()
    _rc, out = _make("cluster", timeout=UP_TIMEOUT)
    match = re.search(r"^export KUBECONFIG=(\S+)$", out, re.MULTILINE)
    if match is None:
        raise AssertionError(f"make cluster printed no 'export KUBECONFIG=' line:\n{out}")
    return Cluster(kubeconfig=Path(match.group(1)), reused=reused)


def cluster_down() -> None:
    _make("cluster-down", timeout=180)


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A running cluster for the block; one it started is torn down after, failures or not."""
    if reason := can_host_cluster():
        # A skipped e2e would let `make test` pass without proving anything: only E2E=0 skips.
        if os.environ.get("E2E") == "0":
            pytest.skip(f"{reason} (E2E=0)")
        pytest.fail(f"this machine cannot host the e2e cluster: {reason}; E2E=0 skips the e2e on purpose")
    cluster = cluster_up()
    try:
        yield cluster
    finally:
        if not cluster.reused and not os.environ.get("TASKQ_CLUSTER_KEEP"):
            cluster_down()


def _make(target: str, *, timeout: float = 600, check: bool = True) -> tuple[int, str]:
    res = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), target],
                         capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"make {target} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res.returncode, res.stdout + res.stderr


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
