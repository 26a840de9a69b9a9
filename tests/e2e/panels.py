"""Pictures of the Grafana dashboard's panels drawn from a real Prometheus (Grafana itself cannot be
used here): each panel's queries over the e2e run, as Grafana would plot them, with the moments each
scenario started marked, plus a page that lists every panel with its PromQL and its picture."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEGEND_MAX = 8
RangeQuery = Callable[[str, float, float, float], list[dict[str, Any]]]


@dataclass
class Panel:
    title: str
    kind: str
    file: str
    exprs: list[str]
    series: int = 0  # series with at least one sample over the run
    points: int = 0
    last: list[str] = field(default_factory=list)  # the last value of each series, as the legend shows it


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def legend(metric: dict[str, str], fmt: str | None, expr: str) -> str:
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m[1], ""), fmt)
    labels = {k: v for k, v in metric.items() if k != "__name__"}
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or expr.split("(", 1)[0]


def render(dashboard: dict[str, Any], query_range: RangeQuery, subst: dict[str, str], *, start: float,
           end: float, marks: list[tuple[float, str]], out: Path) -> list[Panel]:
    """One PNG per panel in ``out`` and ``dashboard.md`` beside it listing them; returns what each showed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    step = max(2.0, (end - start) / 300)
    panels: list[Panel] = []
    for p in dashboard["panels"]:
        targets = p.get("targets", [])
        if not targets:
            continue
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        panel = Panel(p["title"], p.get("type", "timeseries"), f"{slug(p['title'])}.png", [t["expr"] for t in targets])
        fig, ax = plt.subplots(figsize=(10, 2.8), dpi=72)
        for t in targets:
            expr = t["expr"]
            for k, v in subst.items():
                expr = expr.replace(k, v)
            for s in query_range(expr, start, end, step):
                xs = [(float(ts) - start) / 60 for ts, _ in s["values"]]
                ys = [float(v) for _, v in s["values"]]
                if not xs:
                    continue
                name = legend(s["metric"], t.get("legendFormat"), t["expr"])
                ax.plot(xs, ys, linewidth=1.2, label=f"{name} ({ys[-1]:.3g})")
                panel.series += 1
                panel.points += len(xs)
                panel.last.append(f"{name}: {ys[-1]:.3g}")
        for i, (when, _) in enumerate(marks, 1):
            x = (when - start) / 60
            ax.axvline(x, color="grey", linewidth=0.6, linestyle=":")
            ax.annotate(str(i), (x, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color="grey",
                        ha="center", va="bottom")
        ax.set_title(f"{panel.title}" + (f"  [{unit}]" if unit else ""), fontsize=10, loc="left", pad=12)
        ax.set_xlim(0, (end - start) / 60)
        ax.set_xlabel("minutes into the e2e run", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if panel.series:
            # Beside the plot, never over it; a panel of many series (one per pod) names the first few.
            handles, labels = ax.get_legend_handles_labels()
            if len(handles) > LEGEND_MAX:
                labels = [*labels[:LEGEND_MAX - 1], f"… and {len(labels) - LEGEND_MAX + 1} more series"]
                handles = handles[:LEGEND_MAX]
            ax.legend(handles, labels, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
        fig.tight_layout()
        fig.savefig(out / panel.file)
        plt.close(fig)
        panels.append(panel)
    (out.parent / "dashboard.md").write_text(page(panels, marks, start))
    return panels


def page(panels: list[Panel], marks: list[tuple[float, str]], start: float) -> str:
    lines = [
        "# The Grafana dashboard after the e2e run",
        "",
        "Drawn by `tests/e2e/panels.py` from the e2e cluster's Prometheus, which scrapes every API and",
        "worker pod from the start of the e2e run (`make test-e2e`; `TASKQ_UPDATE_SCREENSHOTS=1` writes",
        "them here, otherwise to `.taskq/dashboard/`). Each picture is the panel's PromQL of",
        "`charts/taskq/dashboards/taskq.json` over the whole run, with `$__rate_interval` = 1m; the",
        "numbered dotted lines are the moments these scenarios started:",
        "",
        *[f"{i}. {name} (minute {(when - start) / 60:.1f})" for i, (when, name) in enumerate(marks, 1)],
        "",
    ]
    for p in panels:
        lines += [f"## {p.title}", "", f"![{p.title}](dashboard/{p.file})", ""]
        lines += [f"- `{e}`" for e in p.exprs]
        lines += ["", f"Series: {p.series}; last values: {'; '.join(p.last) or 'no data'}.", ""]
    return "\n".join(lines)
