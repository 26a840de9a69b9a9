"""taskq as a dependency of a parent chart: Helm hands it `global`, which the schema must accept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.chart.helm import CHART, K8S_VERSION, find, tool


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def test_a_parent_chart_renders_and_lints_with_taskq_as_a_dependency(tmp_path: Path) -> None:
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    parent = tmp_path / "platform"
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "platform", "version": "1.0.0", "description": "A parent of taskq.",
        "icon": "https://example.org/icon.png",
        "dependencies": [{"name": "taskq", "version": version, "repository": f"file://{CHART}"}],
    }))
    (parent / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imageRegistry": "registry.example.org", "otherChartsSetting": {"any": "thing"}},
        "taskq": {"worker": {"replicas": 2}},
    }))
    helm("dependency", "build", "--skip-refresh", str(parent))
    assert (parent / "charts" / f"taskq-{version}.tgz").exists()
    helm("lint", "--strict", str(parent))
    out = helm("template", "prod", str(parent), "--kube-version", K8S_VERSION, "--namespace", "jobs").stdout
    objs = [d for d in yaml.safe_load_all(out) if d]
    worker = find(objs, "Deployment", "prod-worker")
    assert worker["spec"]["replicas"] == 2
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.org/taskq-worker:0.1.0"
    api = find(objs, "Deployment", "prod-taskq-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["image"].startswith("registry.example.org/")
