"""``promtool test rules`` on every alert of the chart's PrometheusRule, the rules rendered from the
chart by helm at test time (never a copy that could drift), and a guard that no alert goes untested."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from taskq.devstack.prometheus import alert_names, chart_rules
from tests.chart.helm import tool
from tests.prometheus.support import need

TESTS = Path(__file__).resolve().parent / "alerts_test.yaml"


def _rules() -> dict[str, Any]:
    return chart_rules(helm=tool("helm"))


def test_every_alert_of_the_chart_fires_and_stays_quiet_as_its_promtool_tests_say(tmp_path: Path) -> None:
    promtool = need("promtool")
    # promtool reads rule_files relative to the test file: both go into one folder.
    shutil.copy(TESTS, tmp_path / TESTS.name)
    (tmp_path / "rules.json").write_text(json.dumps(_rules(), indent=1))
    check = subprocess.run([promtool, "check", "rules", "rules.json"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    res = subprocess.run([promtool, "test", "rules", TESTS.name], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


def test_no_alert_of_the_chart_goes_without_a_firing_and_a_quiet_case() -> None:
    chart_alerts = alert_names(_rules())
    assert chart_alerts, "the chart's PrometheusRule has no alerts"
    cases = [case for t in yaml.safe_load(TESTS.read_text())["tests"] for case in t.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert not set(chart_alerts) - fires, f"alerts with no promtool case where they fire: " \
                                          f"{sorted(set(chart_alerts) - fires)} (add one to {TESTS.name})"
    assert not set(chart_alerts) - quiet, f"alerts with no promtool case where they stay quiet: " \
                                          f"{sorted(set(chart_alerts) - quiet)} (add one to {TESTS.name})"
    unknown = (fires | quiet) - set(chart_alerts)
    assert not unknown, f"{TESTS.name} tests alerts the chart does not have (a quiet case passes vacuously): " \
                        f"{sorted(unknown)}"
