"""Rendering the chart with the cached helm, and finding objects in what it renders."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskq.devstack import default_cache_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "taskq"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
# The e2e suites install the chart with these; they must keep rendering as the chart evolves.
E2E_VALUES = sorted((ROOT / "tests" / "e2e").glob("values-*.yaml"))
CACHE_BIN = default_cache_dir() / "bin"
# kubeconform-layout schemas of the custom resources, from the operators' CRDs: `make crds` (tools/crds/).
CRD_SCHEMAS = default_cache_dir() / "crd-schemas"
K8S_VERSION = "1.37.0"


def tool(name: str) -> str:
    path = str(CACHE_BIN / name) if (CACHE_BIN / name).exists() else (shutil.which(name) or str(CACHE_BIN / name))
    if not Path(path).exists():
        pytest.fail(f"{name} not found: run 'make tools' (go install into {CACHE_BIN})")
    return path


def render(*args: str, release: str = "rel", namespace: str = "jobs",
           check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([tool("helm"), "template", release, str(CHART), "--kube-version", K8S_VERSION,
                          "--namespace", namespace, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def docs(*args: str, release: str = "rel", namespace: str = "jobs") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(*args, release=release, namespace=namespace).stdout) if d]


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    for o in objs:
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name):
            return o
    raise AssertionError(f"no {kind} {name or ''} rendered")


def notes(*args: str, release: str = "rel", namespace: str = "jobs") -> str:
    """NOTES.txt as `helm install` prints it, rendered offline.

    `helm template` skips NOTES.txt and `helm install --dry-run` needs a cluster, so a copy of the
    chart carries the notes as a named template and a one-value manifest that includes it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / CHART.name
        shutil.copytree(CHART, chart)
        text = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "NOTES.txt").unlink()
        (chart / "templates" / "_notes.tpl").write_text('{{- define "test.notes" }}' + text + "{{- end }}")
        (chart / "templates" / "notes.yaml").write_text('notes: {{ include "test.notes" . | toJson }}\n')
        res = subprocess.run([tool("helm"), "template", release, str(chart), "--kube-version", K8S_VERSION,
                              "--namespace", namespace, "--show-only", "templates/notes.yaml", *args],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    return str(yaml.safe_load(res.stdout)["notes"])
