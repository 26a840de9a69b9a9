"""The shipped Grafana dashboard, read as Grafana reads it: Grafana's typed dashboard model from the
grafana-foundation-sdk (tools/grafana: dashcheck) decodes it strictly and validates it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.chart.helm import ROOT, tool

DASHBOARD = ROOT / "charts" / "taskq" / "dashboards" / "taskq.json"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("dashcheck"), str(path)], capture_output=True, text=True, timeout=60)


def test_the_shipped_dashboard_decodes_strictly_and_validates_against_grafanas_model() -> None:
    res = _check(DASHBOARD)
    assert res.returncode == 0, res.stderr


def test_the_checker_refuses_a_dashboard_grafana_would_not_read(tmp_path: Path) -> None:
    """So a passing check means something: an unknown field and a wrong type are both refused."""
    board = json.loads(DASHBOARD.read_text())
    board["panels"][0]["gridPos"] = {"h": "tall", "w": 12, "x": 0, "y": 0}
    board["refreshh"] = "10s"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(board))
    res = _check(bad)
    assert res.returncode == 1, res
    assert "bad.json" in res.stderr and ("gridPos" in res.stderr or "refreshh" in res.stderr), res.stderr
