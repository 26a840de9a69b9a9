"""The Kubernetes scenarios, shared by the single-node cluster suite and the kind suite.

Each scenario drives the real cluster through helm, kubectl and the API Service, then checks
the records: every accepted task terminal, how many ran more than once, and how long recovery took.
An ``E2E`` environment says how to reach the cluster; the scenarios never know which cluster it is.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from packaging.utils import canonicalize_name

from tests import locks
from tests.e2e.netns import NetnsHttp

TERMINAL = {"success", "failed", "dead", "cancelled"}


class Http(Protocol):
    def request(self, method: str, url: str, **kw: Any) -> httpx.Response: ...
    def map(self, fn: Callable[[httpx.Client, Any], Any], items: Any) -> list[Any]: ...


class E2E(Protocol):
    namespace: str
    release: str
    http: Http

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> str: ...
    def helm(self, *args: str, timeout: float = 600) -> str: ...
    def api_url(self) -> str: ...
    def kill_container(self, pod: str, container: str) -> None: ...
    def tag_images(self, tag: str) -> None: ...
    def helm_upgrade(self, *set_values: str) -> None: ...
    def restart(self, backing: str) -> None: ...
    def browser_executable(self, folder: Path) -> str: ...
    token: str | None  # set while a scenario runs the release with an API token
    def ingress_address(self) -> str: ...
    def tls_http(self, ca: Path) -> NetnsHttp: ...


@dataclass
class Row:
    scenario: str
    tasks: int
    lost: int
    duplicates: int
    recovery: float | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def render(self) -> str:
        head = f"{'scenario':<44} {'tasks':>6} {'lost':>5} {'dup':>4} {'recovery s':>10}  note"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rec = f"{r.recovery:.1f}" if r.recovery is not None else "-"
            lines.append(f"{r.scenario:<44} {r.tasks:>6} {r.lost:>5} {r.duplicates:>4} {rec:>10}  {r.note}")
        return "\n".join(lines)


def wait_for(check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- the API, through the Service -------------------------------------------------------------------------

def auth(env: E2E) -> dict[str, str]:
    """The token's header while a scenario runs the release with one (the others run it without)."""
    return {"Authorization": f"Bearer {env.token}"} if env.token else {}


def submit(env: E2E, task: str, args: list[Any], n: int, *, chunk: int = 100) -> list[str]:
    ids: list[str] = []
    body = [{"task": task, "args": args}] * chunk
    while len(ids) < n:
        part = body[: min(chunk, n - len(ids))]
        r = env.http.request("POST", f"{env.api_url()}/api/tasks/batch", json=part, headers=auth(env))
        assert r.status_code == 202, r.text
        ids.extend(r.json()["ids"])
    return ids


def records(env: E2E, ids: list[str]) -> dict[str, dict[str, Any]]:
    base, headers = env.api_url(), auth(env)

    def get(c: httpx.Client, tid: str) -> tuple[str, dict[str, Any] | None]:
        try:
            r = c.get(f"{base}/api/tasks/{tid}", headers=headers)
        except httpx.HTTPError:
            return tid, None
        return tid, r.json() if r.status_code == 200 else None

    return {tid: rec for tid, rec in env.http.map(get, ids) if rec is not None}


def wait_terminal(env: E2E, ids: list[str], *, timeout: float) -> dict[str, dict[str, Any]]:
    """Every id's record once all are terminal; AssertionError with samples of the rest."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while True:
        pending = [t for t in ids if t not in done]
        for tid, rec in records(env, pending).items():
            if rec["status"] in TERMINAL:
                done[tid] = rec
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            left = [t for t in ids if t not in done]
            sample = records(env, left[:5])
            where = diagnose(env, left)
            raise AssertionError(f"{len(left)} of {len(ids)} tasks not terminal after {timeout:.0f}s: "
                                 f"{json.dumps(sample, default=str)[:2000]}\n{where}")
        time.sleep(1.0)


DIAGNOSIS = Path(__file__).resolve().parents[2] / ".taskq" / "e2e-diagnosis.txt"


def diagnose(env: E2E, stuck: list[str]) -> str:
    """Where stuck tasks wait, for the failure message and .taskq/e2e-diagnosis.txt: their states,
    the consumer lag per partition (unread in Kafka, or read and not finished?), the workers with
    their partitions, and each worker pod's last log lines."""
    parts: list[str] = []

    def section(title: str, fetch: Callable[[], str]) -> None:
        try:
            parts.append(f"--- {title}\n{fetch()}")
        except Exception as exc:
            parts.append(f"--- {title}: unavailable ({exc!r})")

    section("stuck tasks by status", lambda: json.dumps(count_status(env, stuck)))
    section("consumer lag per partition (API /api/stats)",
            lambda: json.dumps(env.http.request("GET", f"{env.api_url()}/api/stats",
                                                headers=auth(env)).json().get("lag")))
    section("workers (API /api/workers)", lambda: "\n".join(
        f"{w.get('id')} {w.get('status')} partitions={w.get('partitions')} running={w.get('current_tasks')} "
        f"quiet={w.get('quiet')} lost_partitions={w.get('lost_partitions')}"
        for w in env.http.request("GET", f"{env.api_url()}/api/workers", headers=auth(env)).json()))
    for pod in pods(env, "worker"):
        name = pod["metadata"]["name"]
        section(f"kubectl logs {name} (last 80 lines)", lambda n=name: env.kubectl(
            "logs", n, "-n", env.namespace, "-c", "worker", "--tail=80", check=False, timeout=30))
    text = "\n".join(parts)
    DIAGNOSIS.parent.mkdir(parents=True, exist_ok=True)
    DIAGNOSIS.write_text(text + "\n")
    return text[-6000:]


def count_status(env: E2E, ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rec in records(env, ids).values():
        out[rec["status"]] = out.get(rec["status"], 0) + 1
    return out


def workers(env: E2E) -> list[dict[str, Any]]:
    r = env.http.request("GET", f"{env.api_url()}/api/workers", headers=auth(env))
    r.raise_for_status()
    return list(r.json())


# --- pods ---------------------------------------------------------------------------------------------------

def pods(env: E2E, component: str) -> list[dict[str, Any]]:
    out = env.kubectl("get", "pods", "-n", env.namespace, "-o", "json",
                      "-l", f"app.kubernetes.io/instance={env.release},app.kubernetes.io/component={component}")
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def ready_pods(env: E2E, component: str) -> list[dict[str, Any]]:
    return [p for p in pods(env, component)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def worker_name(env: E2E) -> str:
    return f"{env.release}-worker"


def rollout(env: E2E, kind_name: str, timeout: int = 300) -> None:
    env.kubectl("rollout", "status", kind_name, "-n", env.namespace, f"--timeout={timeout}s", timeout=timeout + 10)


def busiest_worker(env: E2E, ids: list[str]) -> str:
    """The worker pod running the most of ``ids`` right now."""
    running: dict[str, int] = {}
    for rec in records(env, ids).values():
        if rec["status"] == "running" and rec.get("worker"):
            running[rec["worker"]] = running.get(rec["worker"], 0) + 1
    assert running, "no task is running"
    return max(running, key=lambda w: running[w])


def wait_mid_run(env: E2E, ids: list[str], *, finished: int = 20, timeout: float = 120) -> None:
    def mid() -> bool:
        c = count_status(env, ids)
        return c.get("success", 0) >= finished and c.get("running", 0) > 0
    wait_for(mid, timeout=timeout, what=f"{finished} tasks finished and some running")


def check_outcome(recs: dict[str, dict[str, Any]], *, lost_worker: str | None = None,
                  since: float | None = None) -> tuple[int, float | None]:
    """Asserts every task succeeded; returns (tasks run more than once, seconds until the last re-run ended).

    With ``lost_worker`` a re-run is allowed only as attempt 2 of a task that worker was running;
    without it nothing may run twice.
    """
    bad = {t: r["status"] for t, r in recs.items() if r["status"] != "success"}
    assert not bad, f"{len(bad)} tasks did not succeed: {list(bad.items())[:5]}"
    reruns = {t: r for t, r in recs.items() if r["attempts"] > 1}
    if lost_worker is None:
        assert not reruns, f"{len(reruns)} tasks ran twice: {list(reruns.values())[:3]}"
        return 0, None
    for r in reruns.values():
        assert r["attempts"] == 2, r
        first, second = r["history"][0], r["history"][1]
        assert first["worker"] == lost_worker and first.get("outcome") == "lost", r
        assert second["reason"] == f"redelivered: worker {lost_worker} was lost", r
    recovery = None
    if reruns and since is not None:
        recovery = max(float(r["finished_at"]) for r in reruns.values()) - since
    return len(reruns), recovery


@contextmanager
def api_prober(env: E2E, *, interval: float = 0.05, via: Ingress | None = None) -> Iterator[dict[str, int]]:
    """Submits a task and reads /readyz through the Service (or the ingress) in a loop; counts what
    was not 2xx."""
    counts = {"ok": 0, "bad": 0}
    errors: list[str] = []
    stop = threading.Event()
    base = env.api_url() if via is None else via.base
    http = env.http if via is None else via.http
    extra: dict[str, Any] = {} if via is None else {"extensions": via.extensions}
    headers = auth(env) if via is None else via.headers

    def probe() -> None:
        while not stop.is_set():
            for method, path, body in (("POST", "/api/tasks", {"task": "add", "args": [1, 1]}),
                                       ("GET", "/readyz", None)):
                try:
                    # A connection of its own per probe, as a load balancer's health check or a new
                    # caller opens one: a keep-alive connection to a pod that is shutting down is closed
                    # by the server once idle (HTTP allows it; clients retry idempotent requests), and a
                    # probe reusing it at that instant saw 'connection reset' (1 of 802 in CI run 18).
                    r = http.request(method, base + path, json=body, headers={"Connection": "close", **headers},
                                     **extra)
                    ok = 200 <= r.status_code < 300
                    if not ok:
                        errors.append(f"{method} {path}: {r.status_code} {r.text[:100]}")
                except httpx.HTTPError as exc:
                    ok = False
                    errors.append(f"{method} {path}: {type(exc).__name__} {exc}")
                counts["ok" if ok else "bad"] += 1
            stop.wait(interval)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    try:
        yield counts
    finally:
        stop.set()
        t.join(timeout=30)
        counts["errors_sample"] = len(errors)
        if errors:
            print("api prober errors:", errors[:5])


# --- the scenarios ------------------------------------------------------------------------------------------

def workers_alive_with_partitions(env: E2E, n: int) -> bool:
    alive = [w for w in workers(env) if w["status"] == "alive" and w.get("partitions")]
    return len(alive) == n


def settle(env: E2E, replicas: int = 3) -> None:
    """Back to the resting shape between scenarios: ``replicas`` workers, all holding partitions."""
    rollout(env, f"deployment/{worker_name(env)}")
    wait_for(lambda: len(ready_pods(env, "worker")) == replicas, timeout=120, what=f"{replicas} ready workers")
    wait_for(lambda: workers_alive_with_partitions(env, replicas), timeout=90,
             what=f"{replicas} live workers holding partitions")


def install_ready(env: E2E, report: Report) -> None:
    assert len(ready_pods(env, "worker")) == 3
    assert len(ready_pods(env, "api")) == 2
    out = env.helm("test", env.release, "-n", env.namespace, "--timeout", "5m", timeout=330)
    assert "Phase:          Succeeded" in out, out
    settle(env)
    report.add(Row("helm install + helm test", 1, 0, 0, note="3 workers, 2 API pods Ready; helm test passed"))


# Half-second tasks keep every slot busy at a kill or a scale (what the scenarios need) in half
# the time of one-second ones; the rolling upgrade keeps one-second tasks to be mid-run during the roll.
SHORT_TASK = [0.5]


def graceful_delete(env: E2E, report: Report) -> None:
    ids = submit(env, "sleep", SHORT_TASK, 300)
    wait_mid_run(env, ids)
    victim = busiest_worker(env, ids)
    env.kubectl("delete", "pod", victim, "-n", env.namespace, "--wait=false")
    recs = wait_terminal(env, ids, timeout=300)
    dups, _ = check_outcome(recs)
    assert any(r["worker"] == victim for r in recs.values())
    report.add(Row("kubectl delete pod (graceful)", len(ids), 0, dups, note="nothing ran twice"))
    settle(env)


def killed_worker(env: E2E, report: Report, how: str) -> None:
    """``how``: force-delete (grace 0) or sigkill-from-node (the container's process, by the runtime)."""
    ids = submit(env, "sleep", SHORT_TASK, 300)
    wait_mid_run(env, ids)
    victim = busiest_worker(env, ids)
    killed_at = time.time()
    if how == "force-delete":
        env.kubectl("delete", "pod", victim, "-n", env.namespace, "--grace-period=0", "--force", "--wait=false")
    else:
        env.kill_container(victim, "worker")
    recs = wait_terminal(env, ids, timeout=300)
    dups, recovery = check_outcome(recs, lost_worker=victim, since=killed_at)
    if how == "sigkill-from-node":
        # Its process died mid-run: without a re-run this scenario would prove nothing about redelivery.
        assert dups >= 1 and recovery is not None, "no task of the killed worker was re-run"
        note = "re-runs only of tasks in flight, as attempt 2; recovery = kill to last re-run done"
    else:
        # The kubelet still sends SIGTERM to a force-deleted pod's process: the worker may drain first.
        note = f"the kubelet still SIGTERMs the process: {dups} re-run(s), all of tasks in flight"
    report.add(Row(f"worker {how}", len(ids), 0, dups, recovery, note=note))
    settle(env)


POISON = b'{"v":1,"id":"e2e-poison","task":"echo","args":' + b"[" * 600 + b"]" * 600 + b"}"
PRODUCE_RAW = ("import sys; from taskq.settings import Settings; from taskq.kafka import transport; "
               "s = Settings(); p = transport(s).producer(); p.send_raw(s.tasks_topic, sys.stdin.buffer.read()); "
               "p.close()")


def restart_counts(env: E2E) -> dict[str, int]:
    return {p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))
            for p in pods(env, "worker")}


def poison_message(env: E2E, report: Report) -> None:
    """The issue's kcat reproduction, from inside the cluster: a valid-JSON message whose args nest
    600 deep (it killed every worker once). No pod restarts, it is a dead letter, work goes on."""
    before = restart_counts(env)
    producer = next(iter(before))
    env.kubectl("exec", "-i", "-n", env.namespace, producer, "-c", "worker", "--", "python", "-c", PRODUCE_RAW,
                stdin=POISON.decode())
    ids = submit(env, "add", [1, 2], 100)
    recs = wait_terminal(env, ids, timeout=180)
    check_outcome(recs)

    def lettered() -> bool:
        r = env.http.request("GET", f"{env.api_url()}/api/dead-letters?limit=50", headers=auth(env))
        return r.status_code == 200 and any(d["kind"] == "message" and "nested" in d["reason"]
                                            for d in r.json()["items"])
    wait_for(lettered, timeout=120, what="the poison message in the dead letters")
    assert restart_counts(env) == before, (before, restart_counts(env))
    report.add(Row("poison message (600-deep args)", len(ids), 0, 0, note="dead-lettered; no pod restarted"))


def scale_up_down(env: E2E, report: Report) -> None:
    deployment = f"deployment/{worker_name(env)}"
    before = {p["metadata"]["name"] for p in ready_pods(env, "worker")}
    ids = submit(env, "sleep", SHORT_TASK, 600)
    wait_mid_run(env, ids)
    t0 = time.monotonic()
    env.kubectl("scale", deployment, "-n", env.namespace, "--replicas=5")
    wait_for(lambda: workers_alive_with_partitions(env, 5), timeout=120, what="5 workers holding partitions")
    spread = time.monotonic() - t0
    # Alive in Redis comes before Ready in Kubernetes (the worker's readiness probe runs every 10 s).
    new = {p["metadata"]["name"] for p in pods(env, "worker")} - before
    assert len(new) == 2, new
    wait_for(lambda: any(r.get("worker") in new for r in records(env, ids).values()), timeout=60,
             what="a new pod to run a task")
    env.kubectl("scale", deployment, "-n", env.namespace, "--replicas=1")
    wait_for(lambda: len(pods(env, "worker")) == 1, timeout=120, what="one worker pod left")
    recs = wait_terminal(env, ids, timeout=600)
    dups, _ = check_outcome(recs)
    ran_by_new = sum(1 for r in recs.values() if r["worker"] in new)
    report.add(Row("scale 3 -> 5 -> 1 under load", len(ids), 0, dups, spread,
                   note=f"5 workers held partitions {spread:.1f}s after the scale; the new pods ran {ran_by_new}"))
    env.kubectl("scale", deployment, "-n", env.namespace, "--replicas=3")
    settle(env)


def rolling_upgrade(env: E2E, report: Report) -> None:
    env.tag_images("e2e-2")
    ids = submit(env, "sleep", [1], 300)
    with api_prober(env) as probes:
        env.helm_upgrade("image.tag=e2e-2")
        rollout(env, f"deployment/{env.release}-api")
    images = {c["image"] for p in pods(env, "worker") + pods(env, "api") for c in p["spec"]["containers"]}
    assert images == {"taskq-api:e2e-2", "taskq-worker:e2e-2"}, images
    recs = wait_terminal(env, ids, timeout=600)
    dups, _ = check_outcome(recs)
    report.add(Row("helm upgrade (rolling, new tag)", len(ids), 0, dups,
                   note=f"API probes during the roll: {probes['ok']} ok, {probes['bad']} not 2xx"))
    assert probes["ok"] > 0 and probes["bad"] == 0, probes
    settle(env)


def other_client(env: E2E, report: Report) -> None:
    """The cluster runs the default client (librdkafka); this rolls the release to kafka-python while
    tasks run and back again. Each roll deletes every worker pod gracefully, one at a time, with
    tasks in flight, and puts members of both clients (KIP-848 and classic) in one group: every
    task succeeds, none twice, and the new fleet runs its share."""
    def switch(client: str) -> None:
        before = {p["metadata"]["name"] for p in pods(env, "worker")}
        ids = submit(env, "sleep", SHORT_TASK, 200)
        env.helm_upgrade(*([f"kafka.client={client}"] if client != "default" else []))
        rollout(env, f"deployment/{worker_name(env)}")
        # The batch in flight may all finish on the old pods before a new one joins: tasks submitted
        # once the old pods are gone show the new fleet running.
        wait_for(lambda: _only_current_pods(env, "worker"), timeout=120, what="the old worker pods gone")
        after = submit(env, "sleep", SHORT_TASK, 20)
        recs = wait_terminal(env, ids + after, timeout=300)
        dups, _ = check_outcome(recs)
        new = {r["worker"] for r in recs.values()} - before
        assert new and all(recs[i]["worker"] in new for i in after), f"the {client} fleet ran no task"
        ids += after
        report.add(Row(f"roll the fleet to the {client} Kafka client", len(ids), 0, dups,
                       note=f"{sum(1 for r in recs.values() if r['worker'] in new)} ran on the new pods"))
        settle(env)

    switch("kafka-python")
    config = env.kubectl("get", "configmap", "-n", env.namespace, "-o", "json")
    assert '"TASKQ_KAFKA_CLIENT": "kafka-python"' in config, "the release did not switch to kafka-python"
    switch("default")


def submit_until_accepted(env: E2E, n: int, *, timeout: float = 180) -> list[str]:
    """Submits n tasks, retrying refusals (503, a refused connection) while a pod is replaced."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(ids) < n:
        assert time.monotonic() < deadline, f"only {len(ids)} of {n} submits accepted in {timeout:.0f}s"
        try:
            ids.extend(submit(env, "sleep", [0.5], min(50, n - len(ids)), chunk=50))
        except (AssertionError, httpx.HTTPError):
            time.sleep(1)
    return ids


def backing_restarts(env: E2E, report: Report) -> None:
    ids = submit(env, "sleep", [0.5], 200)
    api_pod = ready_pods(env, "api")[0]["metadata"]["name"]
    env.kubectl("delete", "pod", api_pod, "-n", env.namespace, "--wait=false")
    ids += submit_until_accepted(env, 100)
    env.restart("redis")
    ids += submit_until_accepted(env, 100)
    t0 = time.monotonic()
    env.restart("kafka")
    ids += submit_until_accepted(env, 100)
    back = time.monotonic() - t0
    recs = wait_terminal(env, ids, timeout=600)
    bad = {t: r["status"] for t, r in recs.items() if r["status"] != "success"}
    assert not bad, f"{len(bad)} tasks did not succeed: {list(bad.items())[:5]}"
    dups = sum(1 for r in recs.values() if r["attempts"] > 1)
    report.add(Row("API, Redis and Kafka pods restarted", len(ids), 0, dups, back,
                   note="every accepted task success; recovery = Kafka restart until submits are accepted"))
    settle(env)


def web_ui(env: E2E, report: Report, folder: Path, screenshot: Path) -> None:
    from playwright.sync_api import sync_playwright

    tid = submit(env, "add", [20, 22], 1)[0]
    wait_terminal(env, [tid], timeout=60)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=env.browser_executable(folder), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(env.api_url() + "/", timeout=30000)  # lands on the Overview
            page.click("a[href='#/tasks']")
            try:
                page.wait_for_selector(f"#task-table tbody tr[data-id='{tid}']", timeout=30000)
            except Exception as exc:
                page.screenshot(path=str(screenshot))
                raise AssertionError(f"task {tid} not listed; the page (screenshot {screenshot}) says: "
                                     f"{page.inner_text('body')[:1500]}") from exc
            page.click("a[href='#/workers']")
            page.wait_for_selector("#worker-table tbody tr", timeout=30000)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    report.add(Row("web UI through the API Service", 1, 0, 0, note="Chromium in the cluster network"))


def pod_metrics(env: E2E, report: Report) -> None:
    checked = 0
    for component, metric in (("worker", "taskq_tasks_started_total"), ("api", "taskq_api_")):
        for pod in ready_pods(env, component):
            ann = pod["metadata"].get("annotations", {})
            assert ann.get("prometheus.io/scrape") == "true", ann
            url = f"http://{pod['status']['podIP']}:{ann['prometheus.io/port']}{ann['prometheus.io/path']}"
            r = env.http.request("GET", url)
            if r.status_code != 200:
                logs = env.kubectl("logs", pod["metadata"]["name"], "-n", env.namespace, "--tail=60", check=False)
                raise AssertionError(f"{component} {pod['metadata']['name']}: GET {url} answered {r.status_code} "
                                     f"{r.text[:300]!r}; its log ends:\n{logs}")
            assert metric in r.text, (url, r.text[:300])
            checked += 1
    report.add(Row("pod /metrics from inside the cluster", 0, 0, 0, note=f"{checked} pods answered"))


SBOM_PATH = "/opt/taskq/sbom.cdx.json"
READ_SBOM = ("import json, platform, sys; json.dump({'python': platform.python_version(), "
             f"'sbom': json.load(open({SBOM_PATH!r}))}}, sys.stdout)")


def image_sbom(env: E2E, report: Report, lock: Path) -> None:
    """Each running image carries the SBOM written at its build, and it lists exactly what the
    hashed lock file pinned for the image's Python (so the lock, not whatever pip found, runs)."""
    checked = 0
    for component, container in (("worker", "worker"), ("api", "api")):
        pod = ready_pods(env, component)[0]["metadata"]["name"]
        out = json.loads(env.kubectl("exec", "-n", env.namespace, pod, "-c", container, "--", "python", "-c",
                                     READ_SBOM))
        sbom, want = out["sbom"], locks.pins(lock, python=out["python"])
        assert sbom["bomFormat"] == "CycloneDX", sbom.get("bomFormat")
        have = {canonicalize_name(c["name"]): c.get("version") for c in sbom["components"]}
        assert have.pop("taskq", None) is not None, sorted(have)
        missing = {n: v for n, v in want.items() if have.get(n) != v}
        extra = sorted(set(have) - set(want) - {"pip", "setuptools"})
        assert not missing and not extra, (component, missing, extra)
        checked += 1
    report.add(Row("image SBOM matches the hashed lock", 0, 0, 0, note=f"{checked} images, {len(want)} packages"))


INGRESS_HOST = "taskq.e2e.test"
INGRESS_TLS_SECRET = "taskq-e2e-tls"


@dataclass
class Ingress:
    """The release as a client outside the cluster reaches it: HTTPS to the ingress controller,
    the UI's host name in SNI and Host, the chart's token."""

    base: str
    http: NetnsHttp
    token: str
    host: str = INGRESS_HOST

    @property
    def headers(self) -> dict[str, str]:
        return {"Host": self.host, "Authorization": f"Bearer {self.token}"}

    @property
    def extensions(self) -> dict[str, Any]:
        return {"sni_hostname": self.host}

    def request(self, method: str, path: str, *, token: bool = True, **kw: Any) -> httpx.Response:
        headers = self.headers if token else {"Host": self.host}
        return self.http.request(method, self.base + path, headers=headers, extensions=self.extensions, **kw)


def _self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    cert, key = folder / "ingress.crt", folder / "ingress.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _only_current_api_pods(env: E2E) -> bool:
    return _only_current_pods(env, "api")


def _only_current_pods(env: E2E, component: str) -> bool:
    """No pod of ``component`` terminating, and all of one template (a roll is over)."""
    out = env.kubectl("get", "pods", "-n", env.namespace, "-o", "json",
                      "-l", f"app.kubernetes.io/instance={env.release},app.kubernetes.io/component={component}")
    items = json.loads(out)["items"]
    return bool(items) and not any(p["metadata"].get("deletionTimestamp") for p in items) and \
        len({p["metadata"]["labels"].get("pod-template-hash") for p in items}) == 1


def ingress_values(token: str) -> tuple[str, ...]:
    return ("api.ingress.enabled=true", "api.ingress.className=traefik", f"api.ingress.host={INGRESS_HOST}",
            f"api.ingress.tlsSecret={INGRESS_TLS_SECRET}", "api.auth.enabled=true", f"api.auth.token={token}",
            # Traefik's pods: their X-Forwarded-Proto says the browser came over TLS.
            "api.trustedProxies=10.244.0.0/16")


def _event_through_ingress(env: E2E, ing: Ingress, *, idle: float) -> float:
    """Opens the event stream through the ingress, lets it sit idle for ``idle`` seconds, then submits
    a task (through the Service) and returns how long its first event took to arrive: a proxy that
    buffers or cuts idle streams never delivers it."""
    submitted: list[float] = []
    task: list[str] = []

    def later() -> None:
        submitted.append(time.monotonic())  # before the id: the reader matches on the id, then reads this
        task.append(submit(env, "add", [2, 3], 1)[0])

    def follow(c: httpx.Client) -> float:
        # The API pings every 15 s, so a read timeout never ends a stream that stopped delivering events.
        deadline = time.monotonic() + idle + 30
        timer = threading.Timer(idle, later)
        with c.stream("GET", ing.base + "/api/events", headers=ing.headers, extensions=ing.extensions,
                      timeout=httpx.Timeout(10.0, read=idle + 30)) as r:
            assert r.status_code == 200, r.status_code
            assert r.headers["content-type"].startswith("text/event-stream"), r.headers
            timer.start()
            try:
                for line in r.iter_lines():
                    if task and line.startswith("data:") and task[0] in line:
                        return time.monotonic() - submitted[0]
                    if time.monotonic() > deadline:
                        raise AssertionError(f"the event stream through the ingress delivered no event for the "
                                             f"task submitted after {idle:g} s without events (pings only)")
            finally:
                timer.cancel()
        raise AssertionError("the event stream ended through the ingress")

    return ing.http.call(follow)


def through_ingress(env: E2E, report: Report, folder: Path, screenshot: Path) -> None:
    """The design card's way in: the UI and the API only through an ingress controller (Traefik)
    with TLS. Chromium signs in with the chart's token, submits a task in the form and sees it
    succeed live, opens its deep link; the session cookie is Secure; the event stream survives the
    proxy idle; a helm upgrade refuses no request made through the ingress. Then the release goes
    back to the Service-only values the other scenarios use."""
    from playwright.sync_api import expect, sync_playwright

    token = "e2e" + secrets.token_hex(20)
    cert, key = _self_signed(folder, INGRESS_HOST)
    secret = env.kubectl("create", "secret", "tls", INGRESS_TLS_SECRET, "-n", env.namespace, "--cert", str(cert),
                         "--key", str(key), "--dry-run=client", "-o", "yaml")
    env.kubectl("apply", "-n", env.namespace, "-f", "-", stdin=secret)
    ing: Ingress | None = None
    try:
        env.helm_upgrade(*ingress_values(token))
        env.token = token  # the Service needs it too now
        # helm's --wait ends when the new API pods are ready; the old ones still serve their preStop
        # sleep and then end their streams: the idle-stream check below must not land on one of them.
        wait_for(lambda: _only_current_api_pods(env), timeout=120, what="the API's old pods gone")
        address = env.ingress_address()
        ing = Ingress(f"https://{address}", env.tls_http(cert), token)
        wait_for(lambda: ing.request("GET", "/readyz").status_code == 200, timeout=60,
                 what="the API through the ingress")
        assert ing.request("GET", "/api/tasks?limit=1", token=False).status_code == 401
        assert ing.request("GET", "/api/tasks?limit=1").status_code == 200
        metrics = ing.request("GET", "/metrics")
        assert metrics.status_code != 200 or "taskq_" not in metrics.text, "/metrics is routed by the Ingress"
        # 75 s without events (the API's 15 s pings only): past Traefik v3's default 60 s entrypoint
        # readTimeout, which the cluster's Traefik turns off (docs/kubernetes.md, "Behind Traefik v3").
        latency = _event_through_ingress(env, ing, idle=75)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=env.browser_executable(folder), headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                f"--host-resolver-rules=MAP {INGRESS_HOST} {address}"])
            try:
                # The certificate is self-signed for the test: the browser is told to accept it.
                context = browser.new_context(ignore_https_errors=True)
                page = context.new_page()
                page.goto(f"https://{INGRESS_HOST}/#/submit", timeout=30000)
                expect(page.locator("#token-dialog")).to_be_visible(timeout=30000)
                page.get_by_label("Token", exact=True).fill(token)
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("#token-dialog")).to_be_hidden()
                cookies = [c for c in context.cookies() if c["domain"].endswith(INGRESS_HOST)]
                assert cookies and all(c["secure"] and c["httpOnly"] for c in cookies), cookies
                # The console's event stream is open through the proxy...
                expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=30000)
                page.goto(f"https://{INGRESS_HOST}/#/tasks")
                expect(page.locator("#task-table")).to_be_visible(timeout=30000)
                # ...and brings a task submitted elsewhere into the list as it happens.
                live = submit(env, "multiply", [6, 7], 1)[0]
                expect(page.locator(f"#task-table tbody tr[data-id='{live}']")).to_have_count(1, timeout=30000)
                page.goto(f"https://{INGRESS_HOST}/#/submit")
                expect(page.locator("#task-type option[value=add]")).to_have_count(1, timeout=30000)
                page.select_option("#task-type", "add")
                page.get_by_label("a", exact=True).fill("20")
                page.get_by_label("b", exact=True).fill("22")
                page.get_by_role("button", name="Submit").click()
                expect(page.locator("#submitted [data-field=status]")).to_have_text("success", timeout=60000)
                expect(page.locator("#submitted [data-field=result]")).to_have_text("42")
                tid = page.locator("#submitted [data-field=id]").inner_text()
                deep = context.new_page()  # the deep link, loaded afresh (the session cookie goes along)
                deep.goto(f"https://{INGRESS_HOST}/#/tasks/{tid}", timeout=30000)
                expect(deep.locator("#task-page [data-field=status]")).to_have_text("success", timeout=30000)
                deep.screenshot(path=str(screenshot))
            finally:
                browser.close()

        ids = submit(env, "sleep", [1], 100)
        with api_prober(env, via=ing) as probes:
            # A new pod template for the API (the pods behind the ingress) rolls them one by one.
            env.helm_upgrade(*ingress_values(token), "api.podAnnotations.e2e-rolled=yes")
            rollout(env, f"deployment/{env.release}-api")
        recs = wait_terminal(env, ids, timeout=600)
        dups, _ = check_outcome(recs)
        assert probes["ok"] > 0 and probes["bad"] == 0, probes
    finally:
        if ing is not None:
            ing.http.close()
        env.helm_upgrade()
        env.token = None
        # The token-less release is back once the old pods (which still ask for a token while their
        # preStop runs) are gone: the next scenario's browser would otherwise meet a sign-in dialog.
        wait_for(lambda: _only_current_api_pods(env), timeout=120, what="the API's token-requiring pods gone")
        env.kubectl("delete", "secret", INGRESS_TLS_SECRET, "-n", env.namespace, "--ignore-not-found", check=False)
    report.add(Row("UI and API through the ingress (Traefik, TLS)", len(ids) + 1, 0, dups,
                   note=f"Secure cookie; event {latency:.2f}s after 75 s idle; upgrade probes "
                        f"{probes['ok']} ok, {probes['bad']} not 2xx"))
    settle(env)
