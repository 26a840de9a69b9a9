"""Generate charts/taskq/README.md from README.md.gotmpl, Chart.yaml and the `# --` comments of values.yaml.

It renders the helm-docs templates the chart's README.md.gotmpl uses (``{{ template "chart.X" . }}``)
in helm-docs' layout, so the same .gotmpl also works with helm-docs. Every value must be documented:
a value without a ``# --`` comment on itself or on an enclosing map is an error.

    .venv/bin/python tools/chart/readme.py            # rewrite charts/taskq/README.md
    .venv/bin/python tools/chart/readme.py -o FILE    # write elsewhere (the staleness test does)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "taskq"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")
TEMPLATE = re.compile(r'\{\{-? *template "(?P<name>chart\.[A-Za-z]+)" \. *-?\}\}')


class UndocumentedValue(Exception):
    """A value in values.yaml has no `# --` comment."""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def value_rows(values_text: str) -> list[Row]:
    """One row per `# --` comment, in file order; its description may continue on `#` lines."""
    values = yaml.safe_load(values_text) or {}
    rows: list[Row] = []
    stack: list[tuple[int, str, bool]] = []  # indent, key, documented
    comment: list[str] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if stripped.startswith("# --"):
                comment = [stripped[4:].strip()]
            elif comment:
                comment.append(text)
            continue
        match = KEY.match(line)
        if not match:
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k, _ in stack] + [match["key"]]
        inherited = any(documented for _, _, documented in stack)
        documented = bool(comment)
        stack.append((indent, match["key"], documented))
        is_leaf = match["rest"].strip() not in ("", "|", ">")
        if documented:
            rows.append(_row(path, values, " ".join(comment)))
        elif is_leaf and not inherited:
            raise UndocumentedValue(f"values.yaml: '{'.'.join(path)}' has no '# --' comment; document it")
        comment = []
    return rows


def _row(path: list[str], values: dict[str, Any], description: str) -> Row:
    default: Any = values
    for key in path:
        default = default[key]
    kind = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return Row(key=".".join(path), type=kind.get(type(default), "string"),
               default=json.dumps(default, separators=(",", ":")), description=description)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def values_section(rows: list[Row]) -> str:
    lines = ["## Values", "", "| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    lines += [f"| {r.key} | {r.type} | `{_cell(r.default)}` | {_cell(r.description)} |" for r in rows]
    return "\n".join(lines)


def chart_templates(chart: dict[str, Any], rows: list[Row]) -> dict[str, str]:
    def badge(label: str, value: str, color: str) -> str:
        quoted = value.replace("-", "--").replace("_", "__")
        return f"![{label}: {value}](https://img.shields.io/badge/{label}-{quoted}-{color}?style=flat-square) "

    maintainers = ["## Maintainers", "", "| Name | Email | Url |", "| ---- | ------ | --- |"]
    maintainers += [f"| {m['name']} | {m.get('email', '')} | <{m['url']}> |" if m.get("url")
                    else f"| {m['name']} | {m.get('email', '')} |  |" for m in chart.get("maintainers", [])]
    sources = ["## Source Code", ""] + [f"* <{s}>" for s in chart.get("sources", [])]
    return {
        "chart.header": f"# {chart['name']}",
        "chart.description": chart.get("description", ""),
        "chart.versionBadge": badge("Version", chart["version"], "informational"),
        "chart.typeBadge": badge("Type", chart.get("type", "application"), "informational"),
        "chart.appVersionBadge": badge("AppVersion", str(chart.get("appVersion", "")), "informational"),
        "chart.homepageLine": f"**Homepage:** <{chart['home']}>" if chart.get("home") else "",
        "chart.kubeVersion": chart.get("kubeVersion", ""),
        "chart.maintainersSection": "\n".join(maintainers),
        "chart.sourcesSection": "\n".join(sources),
        "chart.valuesSection": values_section(rows),
    }


def render(chart_dir: Path = CHART) -> str:
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    rows = value_rows((chart_dir / "values.yaml").read_text())
    templates = chart_templates(chart, rows)

    def expand(match: re.Match[str]) -> str:
        if match["name"] not in templates:
            raise KeyError(f"README.md.gotmpl uses {match['name']}, which tools/chart/readme.py does not render")
        return templates[match["name"]]

    text = TEMPLATE.sub(expand, (chart_dir / "README.md.gotmpl").read_text())
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=CHART / "README.md")
    args = parser.parse_args(argv)
    try:
        args.output.write_text(render())
    except UndocumentedValue as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
