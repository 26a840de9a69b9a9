"""The shipped Grafana dashboard, read as Grafana reads it: Grafana's typed dashboard model from the
grafana-foundation-sdk (tools/grafana: dashcheck) decodes it strictly and validates it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import ROOT, tool

DASHBOARD = ROOT / "charts" / "taskq" / "dashboards" / "taskq.json"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("dashcheck"), str(path)], capture_output=True, text=True, timeout=60)


def test_the_shipped_dashboard_decodes_strictly_and_validates_against_grafanas_model() -> None:
    res = _check(DASHBOARD)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("break_it,named", [
    (lambda b: b.__setitem__("refreshh", "10s"), "refreshh"),  # a field Grafana's model does not have
    (lambda b: b["panels"][0].__setitem__("gridPos", {"h": "tall", "w": 12, "x": 0, "y": 0}), "gridPos"),  # a type
    (lambda b: b.pop("annotations"), "annotations"),  # a required field missing
], ids=["unknown-field", "wrong-type", "missing-required"])
def test_the_checker_refuses_a_dashboard_grafana_would_not_read(
    tmp_path: Path, break_it: Callable[[dict[str, Any]], object], named: str
) -> None:
    """So a passing check means something: each kind of fault is refused, and named."""
    board = json.loads(DASHBOARD.read_text())
    break_it(board)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(board))
    res = _check(bad)
    assert res.returncode == 1, res
    assert "bad.json" in res.stderr and named in res.stderr, res.stderr


def test_the_pictures_page_shows_every_panel_of_the_shipped_dashboard_with_its_queries() -> None:
    """docs/dashboard.md is drawn by the e2e (TASKQ_UPDATE_SCREENSHOTS=1): a panel added or changed
    since is missing there, and this says which."""
    board = json.loads(DASHBOARD.read_text())
    page = (ROOT / "docs" / "dashboard.md").read_text()
    for panel in board["panels"]:
        if not panel.get("targets"):
            continue
        assert f"## {panel['title']}\n" in page, f"{panel['title']!r} is not drawn in docs/dashboard.md"
        section = page.split(f"## {panel['title']}\n", 1)[1].split("\n## ", 1)[0]
        picture = section.split("](", 1)[1].split(")", 1)[0]
        assert (ROOT / "docs" / picture).is_file(), picture
        for target in panel["targets"]:
            assert f"`{target['expr']}`" in section, f"{panel['title']}: the page's queries are not the dashboard's"
