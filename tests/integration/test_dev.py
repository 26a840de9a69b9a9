"""``taskq dev``: the whole stack as a user starts it, with every worker's /metrics, and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from taskq.devstack import free_port, port_in_use, spawn, stop_process
from tests.helpers import wait_for


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def _success_count(metrics: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(
        r'^taskq_tasks_finished_total\{[^}]*status="success"[^}]*\} (\S+)$', metrics, re.M))


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _distinct_ports() -> tuple[int, int, int, int]:
    """API, Kafka, Redis and a metrics base whose derived ports (Kafka + 1, base + 1, base + 2) are
    free and all different: free_port() alone hands out neighbours that collide."""
    for _ in range(100):
        api, kafka, redis, base = free_port(), free_port(), free_port(), free_port()
        ports = [api, kafka, kafka + 1, redis, base + 1, base + 2]
        if len(set(ports)) == len(ports) and all(_free(p) for p in (kafka + 1, base + 1, base + 2)):
            return api, kafka, redis, base
    raise AssertionError("no free block of ports for taskq dev")


def test_dev_stack_serves_each_workers_metrics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    api, kafka, redis, base = _distinct_ports()
    keep = ("TASKQ_KAFKA_JARS", "TASKQ_CACHE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_") or k in keep}
    out: list[str] = []
    proc = spawn([sys.executable, "-m", "taskq", "dev", "--workers", "2", "--port", str(api),
                  "--kafka-port", str(kafka), "--redis-port", str(redis), "--metrics-port", str(base),
                  "--data", str(tmp_path / "dev")], env=env, stdout=subprocess.PIPE, cwd=tmp_path)
    stdout = proc.stdout
    assert stdout is not None
    pump = threading.Thread(target=lambda: out.extend(iter(lambda: stdout.readline().decode(), "")), daemon=True)
    pump.start()
    try:
        wait_for(lambda: "ready in" in "".join(out) or proc.poll() is not None, timeout=90,
                 what="taskq dev to be ready")
        text = "".join(out)
        assert proc.poll() is None, text
        for i in (1, 2):
            assert f"worker{i} metrics http://127.0.0.1:{base + i}/metrics" in text
        # The data folder is shown relative to where the user ran it.
        assert "AOF in dev/redis" in text, text
        wait_for(lambda: "partitions assigned" in "".join(out), timeout=60, what="a worker to join")
        submit_env = {**env, "TASKQ_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
                      "TASKQ_REDIS_URL": f"redis://127.0.0.1:{redis}/0"}
        for n in range(6):
            res = subprocess.run([sys.executable, "-m", "taskq", "submit", "add", str(n), "1", "--wait"],
                                 env=submit_env, capture_output=True, text=True, timeout=60)
            assert res.returncode == 0 and res.stdout.strip() == str(n + 1), res.stderr
        wait_for(lambda: sum(_success_count(_get(f"http://127.0.0.1:{base + i}/metrics")) for i in (1, 2)) >= 6,
                 timeout=20, what="the workers' metrics to count 6 successes")
        # The API's own /metrics stays there too.
        assert "taskq_api_" in _get(f"http://127.0.0.1:{api}/metrics")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        wait_for(lambda: "all stopped" in "".join(out), timeout=5, what="the stop message")
    finally:
        stop_process(proc, timeout=60)


def test_dev_stack_refuses_ports_it_would_use_twice(tmp_path: Path) -> None:
    kafka = free_port()
    argv = ["dev", "--workers", "1", "--port", str(free_port()), "--kafka-port", str(kafka),
            "--redis-port", str(free_port()), "--metrics-port", str(kafka), "--data", str(tmp_path / "dev")]
    res = subprocess.run([sys.executable, "-m", "taskq", *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert f"port {kafka + 1} is wanted by both Kafka's controller and worker1's metrics" in res.stderr + res.stdout


def test_dev_stack_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        argv = ["dev", "--workers", "1", "--port", str(free_port()), "--kafka-port", str(free_port()),
                "--redis-port", str(free_port()), "--metrics-port", str(port - 1), "--data", str(tmp_path / "dev")]
        res = subprocess.run([sys.executable, "-m", "taskq", *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert f"port {port} (for worker1's metrics) is already in use" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr + res.stdout


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]


def test_dev_prometheus_scrapes_the_api_and_every_live_worker_with_the_charts_alerts(tmp_path: Path) -> None:
    from taskq.devstack.prometheus import alert_names, chart_rules
    from tests.chart.helm import tool
    from tests.prometheus.support import PromApi, need

    need("prometheus")
    api, kafka, redis, base = _distinct_ports()
    prom_port = free_port()
    keep = ("TASKQ_KAFKA_JARS", "TASKQ_CACHE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_") or k in keep}
    out: list[str] = []
    proc = spawn([sys.executable, "-m", "taskq", "dev", "--workers", "2", "--port", str(api),
                  "--kafka-port", str(kafka), "--redis-port", str(redis), "--metrics-port", str(base),
                  "--prometheus", "--prometheus-port", str(prom_port), "--data", str(tmp_path / "dev")],
                 env=env, stdout=subprocess.PIPE, cwd=tmp_path)
    stdout = proc.stdout
    assert stdout is not None
    pump = threading.Thread(target=lambda: out.extend(iter(lambda: stdout.readline().decode(), "")), daemon=True)
    pump.start()
    prom = PromApi(f"http://127.0.0.1:{prom_port}")

    def up() -> dict[str, set[str]]:
        jobs: dict[str, set[str]] = {}
        for s in prom.query("up == 1"):
            jobs.setdefault(s["metric"]["job"], set()).add(s["metric"]["instance"])
        return jobs

    try:
        wait_for(lambda: "ready in" in "".join(out) or proc.poll() is not None, timeout=90,
                 what="taskq dev to be ready")
        # The URLs follow "ready in": wait for the last line printed.
        wait_for(lambda: "Ctrl-C stops everything" in "".join(out) or proc.poll() is not None, timeout=10,
                 what="taskq dev's summary")
        text = "".join(out)
        assert proc.poll() is None, text
        assert f"Prometheus     http://127.0.0.1:{prom_port}/" in text, text
        workers = {f"127.0.0.1:{base + i}" for i in (1, 2)}
        wait_for(lambda: up() == {"taskq-api": {f"127.0.0.1:{api}"}, "taskq-workers": workers}, timeout=30,
                 what="Prometheus to scrape the API and both workers", interval=0.5)
        # Every target carries the namespace label the dashboard's $namespace variable reads.
        assert prom.label_values("namespace", "taskq_workers") == ["dev"]
        loaded = [r["name"] for r in prom.rules() if r["type"] == "alerting"]
        assert sorted(loaded) == sorted(alert_names(chart_rules(helm=tool("helm"))))
        prom_pid = int((tmp_path / "dev" / "prometheus" / "prometheus.pid").read_text())
        assert prom_pid in _children(proc.pid)
        worker2 = next(c for c in _children(proc.pid)
                       if "worker2" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace"))
        os.kill(worker2, signal.SIGKILL)
        # The dead worker is restarted after a back-off, as a pod is, and scraped again.
        wait_for(lambda: "worker2 restarted" in "".join(out), timeout=30, what="worker2 to be restarted")
        assert "worker2 exited with code -9; restarting in 1s" in "".join(out)
        wait_for(lambda: worker2 not in _children(proc.pid) and any(
            "worker2" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace") for c in _children(proc.pid)),
            timeout=10, what="a new worker2 process")
        wait_for(lambda: up().get("taskq-workers") == workers, timeout=60,
                 what="Prometheus to scrape the restarted worker", interval=0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        wait_for(lambda: "all stopped" in "".join(out), timeout=5, what="the stop message")
        assert not Path(f"/proc/{prom_pid}").exists() and not port_in_use(prom_port), "Prometheus outlived taskq dev"
        assert not (tmp_path / "dev" / "prometheus" / "prometheus.pid").exists()
    finally:
        prom.close()
        stop_process(proc, timeout=60)


def test_dev_prometheus_without_the_binary_says_what_to_install_before_starting_anything(tmp_path: Path) -> None:
    argv = ["dev", "--workers", "1", "--port", str(free_port()), "--kafka-port", str(free_port()),
            "--redis-port", str(free_port()), "--metrics-port", "0", "--prometheus", "--data", str(tmp_path / "dev")]
    env = {**os.environ, "PATH": str(tmp_path)}  # no prometheus (nor anything else) on the PATH
    res = subprocess.run([sys.executable, "-m", "taskq", *argv], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode != 0
    assert "prometheus not found: apt-get install prometheus (or run 'make prometheus')" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "dev" / "redis").exists(), "Redis was started before the check"
