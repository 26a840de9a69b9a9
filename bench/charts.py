"""PNG charts from a bench/results/bench-*.json file (run with a virtualenv that has matplotlib).

    bench/.peers/plot/bin/python -m bench.charts bench/results/bench-20261128-140000.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TASKQ = "#2b6cb0"
PEER = "#a0aec0"


def bars(ax: Any, rows: list[tuple[str, dict[str, float] | None]], *, ylabel: str, title: str,
         never: dict[str, float] | None = None) -> None:
    names = [n for n, _ in rows]
    meds = [s["median"] if s else 0 for _, s in rows]
    lo = [s["median"] - s["min"] if s else 0 for _, s in rows]
    hi = [s["max"] - s["median"] if s else 0 for _, s in rows]
    colors = [TASKQ if n.startswith("taskq") else PEER for n in names]
    ax.bar(names, meds, yerr=[lo, hi], color=colors, capsize=4)
    for i, (n, s) in enumerate(rows):
        if s is None and never and n in never:
            ax.bar([n], [never[n]], color="white", edgecolor="#c53030", hatch="//")
            ax.text(i, never[n], "never", ha="center", va="bottom", color="#c53030", fontsize=8)
        elif s is not None:
            ax.text(i, s["median"], f"{s['median']:.0f}" if s["median"] >= 10 else f"{s['median']:.1f}",
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)


def main(path: Path) -> None:
    data = json.loads(path.read_text())
    table, args = data["table"], data["args"]
    stem = path.with_suffix("")
    written = []
    if "throughput" in table:
        t = table["throughput"]
        rows = sorted(((k, v["end_to_end_per_s"]) for k, v in t.items()), key=lambda kv: -kv[1]["median"])
        fig, ax = plt.subplots(figsize=(8, 4))
        bars(ax, rows, ylabel="tasks/s (end to end)",
             title=f"Throughput: {args['tasks']} add tasks, {args['workers']} workers x {args['slots']} slots "
                   "(median, min-max)")
        fig.tight_layout()
        fig.savefig(f"{stem}-throughput.png", dpi=110)
        written.append(f"{stem}-throughput.png")
    for scenario, title in (("latency", f"Latency at {args['rate']:g} tasks/s: submit->start p99 (ms)"),
                            ("hol", f"Head-of-line: short tasks behind a {args['long']:g} s task, p99 (ms)")):
        if scenario not in table:
            continue
        t = table[scenario]
        rows = sorted(((k, v["start_p99"]) for k, v in t.items()), key=lambda kv: kv[1]["median"] if kv[1] else 1e9)
        fig, ax = plt.subplots(figsize=(7, 4))
        bars(ax, rows, ylabel="ms", title=title)
        fig.tight_layout()
        fig.savefig(f"{stem}-{scenario}.png", dpi=110)
        written.append(f"{stem}-{scenario}.png")
    if "recovery" in table:
        t = table["recovery"]
        rows = [(k.split("/")[0], v.get("recovery_seconds")) for k, v in t.items() if k.endswith("/kill")]
        limit = args["recovery_limit"]
        never = {n: limit for n, s in rows if s is None}
        fig, ax = plt.subplots(figsize=(7, 4))
        bars(ax, rows, ylabel="seconds", never=never,
             title=f"Recovery: SIGKILL one of 3 workers; kill -> last orphan done (limit {limit:g} s)")
        fig.tight_layout()
        fig.savefig(f"{stem}-recovery.png", dpi=110)
        written.append(f"{stem}-recovery.png")
    print("charts: " + ", ".join(written))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
