"""A local Prometheus for ``taskq dev --prometheus`` and the tests: Debian's ``prometheus`` binary
scraping the API and every worker, with the alert rules of the chart's PrometheusRule loaded.

Targets are file_sd files the stack rewrites (atomically) as workers start and stop; Prometheus
picks a change up within a second through inotify. The rules are rendered from charts/taskq by
helm, never copied, so what runs here is what the chart installs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TaskqError
from .services import default_cache_dir, port_in_use, spawn, stop_process, wait_until

# The chart beside the package in a checkout (src/taskq/devstack/../../../charts/taskq); a wheel has none.
CHART = Path(__file__).resolve().parents[3] / "charts" / "taskq"
# Scrape jobs: one file_sd file each, named after the job.
JOBS = ("taskq-api", "taskq-workers")
# Like a cluster's `namespace` label (the dashboard's $namespace variable reads it from taskq_workers).
DEV_NAMESPACE = "dev"
# helm built with `go install` assumes Kubernetes 1.20, below the chart's kubeVersion; the rules
# depend on no API version, so any version the chart accepts will do.
KUBE_VERSION = "1.31.0"


def find_prometheus() -> str:
    exe = shutil.which("prometheus")
    if not exe:
        raise ConfigError("prometheus not found: apt-get install prometheus (or run 'make prometheus')")
    return exe


def find_helm() -> str:
    cached = default_cache_dir() / "bin" / "helm"
    if cached.exists():
        return str(cached)
    if exe := shutil.which("helm"):
        return exe
    raise ConfigError(f"helm not found (it renders the chart's alert rules): run 'make tools' (builds it into "
                      f"{cached.parent})")


def chart_rules(*, chart: Path = CHART, helm: str | None = None, values: Sequence[str] = ()) -> dict[str, Any]:
    """The rule groups of the chart's PrometheusRule as a Prometheus rules file (``{"groups": [...]}``).

    ``values`` are extra ``--set`` assignments (e.g. ``metrics.prometheusRule.failureRatio=0.5``).
    """
    if not (chart / "Chart.yaml").exists():
        raise ConfigError(f"the chart is not at {chart}: the alert rules come from charts/taskq of a taskq checkout")
    try:
        import yaml
    except ImportError as exc:
        raise ConfigError("PyYAML is needed to read the rendered chart: pip install pyyaml (make venv has it)") from exc
    argv = [helm or find_helm(), "template", "taskq", str(chart), "--show-only", "templates/monitoring.yaml",
            "--kube-version", KUBE_VERSION, "--set", "metrics.prometheusRule.enabled=true"]
    for v in values:
        argv += ["--set", v]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise ConfigError(f"helm could not render the chart's alert rules: {res.stderr.strip()}")
    for doc in yaml.safe_load_all(res.stdout):
        if doc and doc.get("kind") == "PrometheusRule":
            return {"groups": doc["spec"]["groups"]}
    raise TaskqError("the chart rendered no PrometheusRule with metrics.prometheusRule.enabled=true")


def alert_names(rules: Mapping[str, Any]) -> list[str]:
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


class PrometheusServer:
    """Debian's Prometheus on 127.0.0.1:``port``: config, rules, targets and data in ``data_dir``.

    ``labels`` go on every target, as a cluster's service discovery puts ``namespace`` on pods.
    """

    def __init__(self, *, data_dir: Path, port: int, scrape_interval: float = 5.0,
                 rules: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None,
                 binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.scrape_interval = scrape_interval
        self.rules = rules
        self.labels = dict(labels or {})
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "prometheus.log"
        self.targets_dir = data_dir / "targets"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_targets(self, job: str, targets: Sequence[str]) -> None:
        """Make ``targets`` (``host:port``) the whole of ``job``'s targets; Prometheus follows within a second."""
        if job not in JOBS:
            raise ConfigError(f"unknown scrape job {job!r}: one of {', '.join(JOBS)}")
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{job}.json"
        tmp = path.with_suffix(".tmp")
        # A rename is atomic: Prometheus never reads half a file (it would drop the job's targets).
        tmp.write_text(json.dumps([{"targets": sorted(targets), "labels": self.labels}] if targets else []))
        os.replace(tmp, path)

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        interval = f"{self.scrape_interval:g}s"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/metrics",
                 "file_sd_configs": [{"files": [str(self.targets_dir / f"{job}.json")], "refresh_interval": "5s"}]}
                for job in JOBS
            ],
        }
        if self.rules is not None:
            rules_path = self.data_dir / "rules.json"
            rules_path.write_text(json.dumps(self.rules, indent=1))
            config["rule_files"] = [str(rules_path)]
        for job in JOBS:  # a job nobody set starts empty, not with a previous run's targets
            if not (self.targets_dir / f"{job}.json").exists():
                self.set_targets(job, [])
        path = self.data_dir / "prometheus.json"  # JSON is YAML: no YAML writer needed
        path.write_text(json.dumps(config, indent=1))
        return path

    def start(self, *, timeout: float = 30.0) -> None:
        binary = self.binary or find_prometheus()
        if port_in_use(self.port):
            raise ConfigError(f"port {self.port} (for Prometheus) is already in use: stop what holds it or pass "
                              "--prometheus-port")
        config = self._write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = spawn([binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / 'data'}",
                           f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log)
        (self.data_dir / "prometheus.pid").write_text(str(self.proc.pid))
        wait_until(self._ready, timeout=timeout, what="Prometheus", proc=self.proc, log=self.log_path)

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:  # noqa: S310 - our own loopback URL
            return bool(r.status == 200)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20, sig=signal.SIGTERM)
            (self.data_dir / "prometheus.pid").unlink(missing_ok=True)
