"""Rendering the chart with the cached helm, and finding objects in what it renders."""

from __future__ import annotations

import shutil
import subprocess
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
CRD_SCHEMAS = ROOT.parent / "shared" / "crd-schemas"
K8S_VERSION = "1.37.0"


def tool(name: str) -> str:
    path = str(CACHE_BIN / name) if (CACHE_BIN / name).exists() else (shutil.which(name) or str(CACHE_BIN / name))
    if not Path(path).exists():
        pytest.fail(f"{name} not found: run 'make tools' (go install into {CACHE_BIN})")
    return path


def render(*args: str, release: str = "rel", check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([tool("helm"), "template", release, str(CHART), "--kube-version", K8S_VERSION,
                          "--namespace", "jobs", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def docs(*args: str, release: str = "rel") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(*args, release=release).stdout) if d]


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    for o in objs:
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name):
            return o
    raise AssertionError(f"no {kind} {name or ''} rendered")
