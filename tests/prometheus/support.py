"""What the Prometheus tests share: Debian's binaries, a client of Prometheus' HTTP API, and the chart's
Grafana dashboard read as Grafana reads it (its queries, its template variables, the labels its panels show)."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "taskq" / "dashboards" / "taskq.json"


def need(binary: str) -> str:
    """Debian's ``prometheus``/``promtool``. ``make test`` installs them first (make prometheus), so
    under make a missing one fails; elsewhere the test skips with one line."""
    path = shutil.which(binary)
    if path is None:
        why = f"Debian's {binary} is not installed (make prometheus installs it)"
        if os.environ.get("MAKELEVEL"):
            pytest.fail(why)
        pytest.skip(why)
    return path


class PromApi:
    """Prometheus' HTTP API (/api/v1): instant queries, label values, rules and alerts."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/api/v1", timeout=10)

    def _get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query, now or ``at`` (epoch seconds): queries compared with each other are
        evaluated at one instant, or a scrape between them makes them disagree."""
        data = self._get("/query", query=expr, **({"time": repr(at)} if at is not None else {}))
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The value of a query answering with one series, None with none."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self._get(f"/label/{label}/values", **{"match[]": match}))

    def targets(self) -> list[dict[str, Any]]:
        """The active targets (what service discovery currently hands over)."""
        return list(self._get("/targets", state="active")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        return [r for g in self._get("/rules")["groups"] for r in g["rules"]]

    def close(self) -> None:
        self.http.close()


# --- the dashboard ---------------------------------------------------------------------------------
# Grafana's own variables that queries may use; every other $name must be a template variable.
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
AGGREGATION = r"(?:sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)"


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref: str
    expr: str
    legend: str

    @property
    def name(self) -> str:
        return f"{self.panel} [{self.ref}]"

    def variables(self) -> set[str]:
        return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(self.expr)}

    def labels(self) -> set[str]:
        """The labels the panel shows: ``{{label}}`` in its legend and what the outermost aggregation
        keeps (``by (...)``); under histogram_quantile, ``le`` is consumed."""
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", self.legend))
        expr = self.expr.strip()
        if expr.startswith("histogram_quantile("):
            inner = re.search(rf"{AGGREGATION}\s+by\s*\(([^)]*)\)", expr)
            kept = set() if inner is None else {x.strip() for x in inner.group(1).split(",")} - {"le"}
        else:
            outer = re.match(rf"{AGGREGATION}\s+by\s*\(([^)]*)\)", expr)
            kept = set() if outer is None else {x.strip() for x in outer.group(1).split(",")}
        return shown | {x for x in kept if x}

    def legend_of(self, metric: dict[str, str]) -> str:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), self.legend)


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [PanelQuery(p["title"], t["refId"], t["expr"], t.get("legendFormat", ""))
            for p in dashboard["panels"] for t in p.get("targets", [])]


def variable_query(variable: dict[str, Any]) -> tuple[str, str]:
    """A query variable's ``label_values(metric, label)`` as (label, metric)."""
    query = variable["query"]
    query = query["query"] if isinstance(query, dict) else query
    m = re.fullmatch(r"\s*label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)\s*", query)
    assert m, f"variable {variable['name']}: only label_values(metric, label) is understood here, not {query!r}"
    return m.group(2), m.group(1)


def regex_value(values: list[str]) -> str:
    """A multi-value variable as Grafana writes it into a regex matcher (=~): each value escaped
    (a backslash doubled inside the PromQL string), several in a group."""
    escaped = [re.sub(r"[$^*{}\[\]'+?.()|\\]", lambda m: "\\\\" + m.group(0), v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        assert name in values, f"no value for ${name} in {expr}"
        return values[name]

    return VARIABLE.sub(one, expr)
