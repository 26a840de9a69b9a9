"""`make bench`: taskq against Celery, Dramatiq, arq and RQ, side by side in one run.

Same machine, same Redis server (a database each), same workers and execution slots per worker,
the same task bodies (bench/peers/common.py). Four scenarios (issue #5):

1. throughput  N `add` tasks from one client; enqueue rate and end-to-end tasks/s. One-at-a-time
               submit for everyone ("single"), each system's bulk API where it has one ("bulk"),
               and for taskq also the pipelined one-at-a-time call ``submit_nowait`` ("pipelined").
2. latency     a steady RATE tasks/s for SECONDS; p50/p95/p99 of submit->start and submit->return.
3. recovery    3 workers, 300 sleep(1) tasks, SIGKILL one worker 5 s in: time from the kill until
               the last of its tasks finished elsewhere ("never" within the limit), and makespan
               against the same run without a kill.
4. hol         one 30 s task, then short tasks on the same partition (taskq: the same key);
               p99 of the short tasks while the long one runs.

Repetitions are interleaved (system after system) so machine noise hits everyone alike; the report
gives medians, min-max and the ratio taskq/peer. Results: a table on the terminal, JSON and PNG
charts under bench/results/.

    .venv/bin/python -m bench.run --scenarios throughput,latency --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from taskq.devstack import KafkaServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
PEERS = ["dramatiq", "celery", "arq", "rq"]
# taskq-ck: taskq with the confluent (librdkafka) client and its default KIP-848 groups;
# taskq-ck-classic: the same with the classic protocol (on request).
SYSTEMS = ["taskq-ck", "taskq", *PEERS]
ALL_SYSTEMS = ["taskq-ck", "taskq-ck-classic", "taskq", *PEERS]
# Bench keys (and the peers' queues) live in one Redis database per system; taskq keeps its own
# records in database 0 under a per-run prefix.
BENCH_DB = {"taskq": 10, "taskq-ck": 15, "taskq-ck-classic": 9, "celery": 11, "dramatiq": 12, "arq": 13, "rq": 14}


def python_for(system: str) -> Path:
    if system.startswith("taskq"):
        return Path(sys.executable)
    py = ROOT / "bench" / ".peers" / system / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"{py} is missing: run 'make bench' (it installs the peers in their own virtualenvs)")
    return py


def run_one(system: str, scenario: str, *, kafka: KafkaServer, redis: RedisServer, extra: list[str],
            timeout: float) -> dict[str, Any]:
    cmd = [str(python_for(system)), "-m", "bench.scenarios", "--system", system, "--scenario", scenario,
           "--redis-url", f"redis://127.0.0.1:{redis.port}/0",
           "--bench-url", f"redis://127.0.0.1:{redis.port}/{BENCH_DB[system]}", "--kafka", kafka.bootstrap,
           "--server-pids", f"{kafka.proc.pid if kafka.proc else 0},{redis.proc.pid if redis.proc else 0}", *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"system": system, "scenario": scenario, "error": f"no result within {timeout:.0f}s"}
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        return {"system": system, "scenario": scenario, "error": " | ".join(tail)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def med(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(stat: dict[str, float] | None, digits: int = 0, unit: str = "") -> str:
    if stat is None:
        return "-"
    m, lo, hi = stat["median"], stat["min"], stat["max"]
    return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and spreads per scenario, system and mode."""
    out: dict[str, Any] = {}
    ok = [r for r in runs if "error" not in r and r.get("supported", True)]
    for r in ok:
        key = r["system"] if r["mode"] == "single" else f"{r['system']}/{r['mode']}"
        if r["scenario"] == "throughput":
            key = f"{r['system']}/{r['mode']}"
        if r["scenario"] == "recovery":
            key = f"{r['system']}/{'kill' if 'orphans' in r else 'no-kill'}"
        out.setdefault(r["scenario"], {}).setdefault(key, []).append(r)
    table: dict[str, Any] = {}
    for scenario, groups in out.items():
        for key, rs in groups.items():
            row: dict[str, Any] = {"runs": len(rs)}
            if scenario == "throughput":
                row["enqueue_per_s"] = med([r["enqueue_per_s"] for r in rs])
                row["end_to_end_per_s"] = med([r["end_to_end_per_s"] for r in rs])
                parts = sorted({k for r in rs for k in r.get("cpu_ms_per_task", {})})
                row["cpu_ms_per_task"] = {k: med([r["cpu_ms_per_task"].get(k) for r in rs if "cpu_ms_per_task" in r])
                                          for k in parts}
            elif scenario in ("latency", "hol"):
                for kind in ("start", "done"):
                    for q in ("p50", "p95", "p99"):
                        row[f"{kind}_{q}"] = med([r[kind][q] for r in rs])
                row["achieved_rate"] = med([r["achieved_rate"] for r in rs])
                row["cpu_ms_per_task"] = med([r["cpu_ms_per_task"]["total"] for r in rs if "cpu_ms_per_task" in r])
                if scenario == "hol":
                    row["long_still_running"] = all(r["long_still_running"] for r in rs)
            elif scenario == "churn":
                for k in ("finished", "kills", "wait_p50", "wait_p99", "wait_max"):
                    row[k] = med([r[k] for r in rs])
            else:
                row["makespan"] = med([r["makespan"] for r in rs])
                if key.endswith("/kill"):
                    row["recovery_seconds"] = med([r["recovery_seconds"] for r in rs])
                    row["never"] = sum(1 for r in rs if r["recovery_seconds"] is None and r["orphans"])
                    row["orphans"] = med([r["orphans"] for r in rs])
                    row["limit"] = rs[0]["limit"]
            table.setdefault(scenario, {})[key] = row
    return table


def print_report(table: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    p = lines.append
    if "throughput" in table:
        t = table["throughput"]
        base = {k: v["end_to_end_per_s"]["median"] for k, v in t.items() if v["end_to_end_per_s"]}
        tq = max((base.get(f"taskq/{m}", 0) for m in ("single", "pipelined", "bulk")), default=0)
        p(f"\nTHROUGHPUT  {args.tasks} add tasks, {args.workers} workers x {args.slots} slots; "
          f"median (min-max) of {args.reps}")
        p(f"{'system/mode':<20}{'enqueue/s':>24}{'end-to-end/s':>24}{'best taskq / this':>20}")
        for k, v in sorted(t.items(), key=lambda kv: -kv[1]["end_to_end_per_s"]["median"]):
            p(f"{k:<20}{fmt(v['enqueue_per_s']):>24}{fmt(v['end_to_end_per_s']):>24}"
              f"{ratio(tq, base.get(k)) if not k.startswith('taskq') else '-':>20}")
        p("\nCPU per task, ms (median): what each system costs the 2 cores, by process")
        p(f"{'system/mode':<20}" + "".join(f"{c:>10}" for c in ("client", "workers", "kafka", "redis", "total")))
        for k, v in sorted(t.items(), key=lambda kv: -kv[1]["end_to_end_per_s"]["median"]):
            c = v.get("cpu_ms_per_task") or {}
            p(f"{k:<20}" + "".join(f"{c[n]['median']:>10.3f}" if c.get(n) else f"{'-':>10}"
                                   for n in ("client", "workers", "kafka", "redis", "total")))
    for scenario, title in (("latency", f"LATENCY  {args.rate:g} tasks/s for {args.seconds:g} s"),
                            ("hol", f"HEAD-OF-LINE  one {args.long:g} s task, then {args.hol_rate:g} short "
                                    f"tasks/s on the same partition for {args.hol_seconds:g} s")):
        if scenario not in table:
            continue
        t = table[scenario]
        p(f"\n{title}; ms, median (min-max) of {args.reps} runs")
        p(f"{'system':<16}{'achieved/s':>12}{'start p50':>20}{'start p99':>22}{'done p99':>22}"
          f"{'taskq/this p99':>16}{'CPU ms/task':>13}")
        tq = t.get("taskq", {}).get("start_p99")
        for k, v in sorted(t.items(), key=lambda kv: (kv[1]["start_p99"] or {"median": 1e9})["median"]):
            mine = v["start_p99"] and v["start_p99"]["median"]
            rel = ratio(tq and tq["median"], mine) if not k.startswith("taskq") else "-"
            p(f"{k:<16}{fmt(v['achieved_rate']):>12}{fmt(v['start_p50'], 1):>20}{fmt(v['start_p99'], 1):>22}"
              f"{fmt(v['done_p99'], 1):>22}{rel:>16}"
              f"{v['cpu_ms_per_task']['median'] if v.get('cpu_ms_per_task') else float('nan'):>13.2f}")
    if "recovery" in table:
        t = table["recovery"]
        p(f"\nRECOVERY  3 workers, {args.recovery_tasks} sleep({args.nap:g}) tasks, SIGKILL one worker "
          f"{args.kill_at:g} s in; limit {args.recovery_limit:g} s")
        p(f"{'system':<18}{'orphaned':>10}{'kill -> last orphan done':>28}{'makespan kill':>20}"
          f"{'makespan no kill':>20}")
        for system in ALL_SYSTEMS:
            k, n = t.get(f"{system}/kill"), t.get(f"{system}/no-kill")
            if not k:
                continue
            if not k["orphans"] or not k["orphans"]["median"]:
                rec = "no task was running"
            elif k["recovery_seconds"] is None:
                rec = f"never within {k['limit']:.0f} s"
            else:
                rec = fmt(k["recovery_seconds"], 1, " s") + (f" ({k['never']} never)" if k["never"] else "")
            p(f"{system:<18}{fmt(k['orphans']):>10}{rec:>28}{fmt(k['makespan'], 1, ' s'):>20}"
              f"{fmt(n['makespan'] if n else None, 1, ' s'):>20}")
    if "churn" in table:
        p(f"\nCHURN  3 workers, {args.churn_rate:g} sleep(0.2) tasks/s for {args.churn_seconds:g} s, one worker "
          f"SIGKILLed and replaced every {args.kill_every:g} s; seconds each task waited in total")
        p(f"{'system':<14}{'finished':>12}{'kills':>8}{'wait p50':>12}{'wait p99':>12}{'wait max':>12}")
        for k, v in table["churn"].items():
            p(f"{k:<14}{fmt(v['finished']):>12}{fmt(v['kills']):>8}{fmt(v['wait_p50'], 2):>12}"
              f"{fmt(v['wait_p99'], 2):>12}{fmt(v['wait_max'], 2):>12}")
    for line in lines:
        print(line)
    return lines


def charts(path: Path) -> None:
    plot_py = ROOT / "bench" / ".peers" / "plot" / "bin" / "python"
    if not plot_py.exists():
        print("charts skipped: bench/.peers/plot is missing (make bench installs matplotlib there)")
        return
    out = subprocess.run([str(plot_py), "-m", "bench.charts", str(path)], cwd=ROOT, capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="throughput,latency,recovery,hol")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slots", type=int, default=8, help="execution slots per worker (Dramatiq's default threads)")
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--recovery-tasks", type=int, default=300)
    ap.add_argument("--nap", type=float, default=1.0)
    ap.add_argument("--kill-at", type=float, default=5.0)
    ap.add_argument("--recovery-limit", type=float, default=600)
    ap.add_argument("--long", type=float, default=30)
    ap.add_argument("--hol-rate", type=float, default=50)
    ap.add_argument("--churn-rate", type=float, default=20, help="churn: tasks/s while workers are killed")
    ap.add_argument("--churn-seconds", type=float, default=60)
    ap.add_argument("--kill-every", type=float, default=5.0)
    ap.add_argument("--hol-seconds", type=float, default=20)
    args = ap.parse_args()
    systems = args.systems.split(",")
    scenarios = args.scenarios.split(",")
    root = Path(tempfile.mkdtemp(prefix="taskq-bench-services-"))
    redis = RedisServer(data_dir=root / "redis", port=free_port())
    kafka = KafkaServer(data_dir=root / "kafka", port=free_port(), controller_port=free_port(),
                        quick_start=False, heap="1g")
    redis.start()
    kafka.start()
    common = ["--slots", str(args.slots)]
    runs: list[dict[str, Any]] = []
    started = time.time()
    try:
        for rep in range(args.reps):
            for scenario in scenarios:
                for system in systems:
                    plans: list[list[str]] = []
                    if scenario == "throughput":
                        modes = ["single", "bulk"] + (["pipelined"] if system.startswith("taskq") else [])
                        plans = [["--mode", m, "--tasks", str(args.tasks), "--workers", str(args.workers)]
                                 for m in modes]
                    elif scenario == "latency":
                        modes = ["single", "pipelined"] if system.startswith("taskq") else ["single"]
                        plans = [["--mode", m, "--rate", str(args.rate), "--seconds", str(args.seconds),
                                  "--workers", str(args.workers)] for m in modes]
                    elif scenario == "hol":
                        plans = [["--rate", str(args.hol_rate), "--seconds", str(args.hol_seconds), "--long",
                                  str(args.long), "--workers", str(args.workers)]]
                    elif scenario == "churn":
                        plans = [["--workers", "3", "--rate", str(args.churn_rate), "--seconds",
                                  str(args.churn_seconds), "--nap", "0.2", "--kill-every", str(args.kill_every),
                                  "--limit", str(args.recovery_limit)]]
                    elif scenario == "recovery":
                        base = ["--workers", "3", "--tasks", str(args.recovery_tasks), "--nap", str(args.nap),
                                "--kill-at", str(args.kill_at), "--limit", str(args.recovery_limit)]
                        plans = [[*base, "--kill"]] + ([[*base, "--no-kill"]] if rep == 0 else [])
                    for extra in plans:
                        r = run_one(system, scenario, kafka=kafka, redis=redis, extra=[*common, *extra],
                                    timeout=args.recovery_limit + 300)
                        r["rep"] = rep + 1
                        runs.append(r)
                        brief = {k: v for k, v in r.items() if k not in ("logs", "start", "done")}
                        print(f"rep {rep + 1} {json.dumps(brief)}", flush=True)
    finally:
        kafka.stop()
        redis.stop()
    table = summarize(runs)
    lines = print_report(table, args)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"cores": os.cpu_count(), "python": sys.version.split()[0], "kafka": kafka.jars.parent.name,
               "platform": sys.platform}
    path.write_text(json.dumps({"args": vars(args), "machine": machine, "seconds": time.time() - started,
                                "table": table, "report": lines, "runs": runs}, indent=2))
    print(f"\nwrote {path}")
    charts(path)


if __name__ == "__main__":
    main()
