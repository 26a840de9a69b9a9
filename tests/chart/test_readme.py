"""The chart README is generated from values.yaml; a stale or undocumented value fails here."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.chart.helm import CHART

ROOT = CHART.parents[1]
GENERATOR = ROOT / "tools" / "chart" / "readme.py"


def generate(output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), "-o", str(output)], capture_output=True, text=True,
                          timeout=60)


def test_readme_is_regenerated_from_values_yaml(tmp_path: Path) -> None:
    fresh = tmp_path / "README.md"
    res = generate(fresh)
    assert res.returncode == 0, res.stderr
    assert fresh.read_text() == (CHART / "README.md").read_text(), (
        "charts/taskq/README.md is stale: run '.venv/bin/python tools/chart/readme.py' and commit it")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_every_value_is_in_the_values_table() -> None:
    readme = load_generator()
    keys = {row.key for row in readme.value_rows((CHART / "values.yaml").read_text())}
    assert {"global.imageRegistry", "api.podSecurityContext", "worker.extraVolumeMounts",
            "networkPolicy.metricsFrom", "worker.image.digest"} <= keys
    with pytest.raises(readme.UndocumentedValue, match=re.escape("'worker.newThing' has no '# --' comment")):
        readme.value_rows("worker:\n  # -- Worker pods.\n  replicas: 3\n  newThing: 1\n")
