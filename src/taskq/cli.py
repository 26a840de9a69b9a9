"""The ``taskq`` command. Every command builds one ``Settings`` and passes it down."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import orjson
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.table import Table

from . import sketch
from .client import Client, parse_cli_value
from .errors import ConfigError, InvalidTask, TaskqError
from .schedules import Schedule
from .settings import Settings, default_worker_id
from .workflows import WorkflowNode, WorkflowRecord

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="taskq: a distributed task queue on Kafka and Redis.")
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# kafka-python logs under "kafka", librdkafka (through confluent.LibrdkafkaLog) under "kafka.librdkafka".
KAFKA_LOGGERS = ("kafka", "confluent_kafka")


def load_settings(**overrides: Any) -> Settings:
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        fail(f"invalid settings: {exc}", code=2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        fail(f"invalid setting {where} (TASKQ_{where.upper()}): {first['msg']}", code=2)
    # Every command, not only the long-running ones: a Kafka library's retry chatter must not reach
    # the terminal of a command that reports the failure itself in one line.
    for name in KAFKA_LOGGERS:
        logging.getLogger(name).setLevel(settings.kafka_log_level)
    return settings


def setup_logging(settings: Settings, *, kafka_level: str | None = None, stream: TextIO | None = None) -> None:
    """Logging for every command, from the settings: classic one-line messages on stdout (or
    ``stream``), or with time, thread and logger when Kafka's own logs are asked for
    (TASKQ_KAFKA_LOG_LEVEL)."""
    diagnose = settings.kafka_log_level != "ERROR"
    logging.basicConfig(level=settings.log_level, stream=stream or sys.stdout,
                        format="%(asctime)s %(threadName)s %(name)s %(message)s" if diagnose else "%(message)s")
    level = kafka_level or settings.kafka_log_level
    for name in KAFKA_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextmanager
def clear_errors() -> Iterator[None]:
    """One readable line and a non-zero exit instead of a traceback."""
    try:
        yield
    except TaskqError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="milliseconds") if ts else "-"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@app.command()
def submit(
    task: Annotated[str, typer.Argument(help="Task name, e.g. add")],
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments; JSON values where they parse (1, [1,2], true)")
    ] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="Keyword arguments as a JSON object")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result and print it")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait")] = 60.0,
    max_retries: Annotated[int | None, typer.Option("--max-retries", min=0)] = None,
    key: Annotated[str | None, typer.Option("--key", help="Ordering key (same key, same partition)")] = None,
    delay: Annotated[float | None, typer.Option("--delay", min=0, help="Run no earlier than this many seconds")] = None,
    task_timeout: Annotated[
        float | None, typer.Option("--time-limit", help="Kill the task after this many seconds")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key", help="Same key, same task")] = None,
    priority: Annotated[
        str, typer.Option("--priority", help="high, normal or low (needs TASKQ_PRIORITY_LANES)")
    ] = "normal",
    rate_key: Annotated[str | None, typer.Option("--rate-key", help="Key of the task's per-key rate limit")] = None,
    concurrency_key: Annotated[
        str | None, typer.Option("--concurrency-key", help="Key of the task's per-key concurrency limit")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Submit a task. Prints its id and status, or its result with --wait."""
    kw: dict[str, Any] = {}
    if kwargs:
        try:
            kw = orjson.loads(kwargs)
        except orjson.JSONDecodeError as exc:
            fail(f"--kwargs is not valid JSON: {exc}", code=2)
        if not isinstance(kw, dict):
            fail("--kwargs must be a JSON object, e.g. '{\"seconds\": 2}'", code=2)
    values = [parse_cli_value(a) for a in (args or [])]
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        tid = client.submit(task, *values, _max_retries=max_retries, _key=key, _delay=delay, _timeout=task_timeout,
                            _idempotency_key=idempotency_key, _priority=priority, _rate_key=rate_key,
                            _concurrency_key=concurrency_key, **kw)
        if not wait:
            typer.echo(_json({"id": tid, "status": "queued"}) if as_json else f"{tid} queued")
            return
        rec = client.wait(tid, timeout=timeout)
        if as_json:
            typer.echo(_json(rec.to_dict()))
        elif rec.status.value == "success":
            typer.echo(_json(rec.result) if not isinstance(rec.result, str) else rec.result)
        else:
            fail(f"task {tid} {rec.status.value}: {rec.error}")


@app.command()
def status(
    task_id: Annotated[str, typer.Argument(help="Task id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a task's state, result or error, attempts and timings."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        rec = client.get(task_id)
    if as_json:
        typer.echo(_json(rec.to_dict()))
        return
    rows = [
        ("id", rec.id), ("task", rec.task), ("args", _json(rec.args)), ("status", rec.status.value),
        ("result", _json(rec.result) if rec.result is not None else "-"), ("error", rec.error or "-"),
        ("attempts", str(rec.attempts)), ("worker", rec.worker or "-"), ("created", _fmt_time(rec.created_at)),
        ("started", _fmt_time(rec.started_at)), ("finished", _fmt_time(rec.finished_at)),
    ]
    if rec.kwargs:
        rows.insert(3, ("kwargs", _json(rec.kwargs)))
    if rec.priority != "normal":
        rows.append(("priority", rec.priority))
    if rec.waiting_for and not rec.status.terminal:
        rows.append(("waiting", f"{rec.waiting_for}" + (f" (due {_fmt_time(rec.eta)})" if rec.eta else "")))
    if rec.progress is not None or rec.progress_message:
        pct = f"{rec.progress * 100:.0f}%" if rec.progress is not None else ""
        rows.append(("progress", " ".join(x for x in (pct, rec.progress_message or "") if x)))
    if rec.cancel_requested and not rec.status.terminal:
        rows.append(("cancel", "requested: the task may stop early"))
    for k, v in rows:
        typer.echo(f"{k + ':':<10} {v}")


def _workflow_tree(rec: WorkflowRecord) -> Any:
    from rich.markup import escape
    from rich.tree import Tree

    colors = {"success": "green", "failed": "red", "dead": "red", "cancelled": "yellow", "running": "cyan"}

    def label(n: WorkflowNode) -> str:
        state = f"[{colors.get(n.state or '', 'dim')}]{n.state or 'not started'}[/]"
        if n.kind == "task":
            text = f"{escape(n.task or '')} {state}"
            if n.task_id:
                text += f" [dim]{n.task_id}[/]"
            if n.state == "success":
                text += f" = {escape(_json(n.result))}"
            elif n.error:
                text += f": {escape(n.error.splitlines()[0])}"
            return text
        extra = f" (on failure: {n.on_failure})" if n.kind == "group" else ""
        return f"[bold]{n.kind}[/]{extra} {state}"

    head = f"workflow {rec.id} [{colors.get(rec.status, 'dim')}]{rec.status}[/]"
    if rec.status == "success":
        head += f" = {escape(_json(rec.result))}"
    elif rec.error:
        head += f": {escape(rec.error.splitlines()[0])}"
    tree = Tree(head)

    def add(branch: Any, index: int) -> None:
        node = rec.nodes[index - 1]
        sub = branch.add(label(node))
        for child in node.children:
            add(sub, child)

    add(tree, 1)
    return tree


@app.command()
def workflow(
    workflow_id: Annotated[str | None, typer.Argument(help="Workflow id")] = None,
    submit_spec: Annotated[str | None, typer.Option(
        "--submit", help="Start a workflow from JSON ({\"chain\": [...]}, {\"chord\": [...], \"callback\": ...}), "
                         "@FILE or - (stdin)")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it has finished")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait")] = 60.0,
    cancel_it: Annotated[bool, typer.Option("--cancel", help="Cancel the running workflow")] = False,
    retry_it: Annotated[bool, typer.Option(
        "--retry", help="Run the failed workflow again from its failed steps")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a workflow as a tree of its steps and their states; or start, cancel or retry one."""
    from .workflows import from_json

    if (workflow_id is None) == (submit_spec is None):
        fail("give a workflow id, or --submit with a workflow's JSON", code=2)
    if cancel_it and retry_it:
        fail("--cancel and --retry do not go together", code=2)
    node = None
    if submit_spec is not None:
        text = submit_spec
        try:
            if text == "-":
                text = sys.stdin.read()
            elif text.startswith("@"):
                text = Path(text[1:]).read_text()
        except OSError as exc:
            fail(f"cannot read {submit_spec[1:]}: {exc.strerror}", code=2)
        try:
            spec = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            fail(f"--submit is not valid JSON: {exc}", code=2)
        with clear_errors():
            node = from_json(spec)
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        if node is not None:
            workflow_id = client.submit_workflow(node)
            if not wait and not as_json:
                typer.echo(f"{workflow_id} running")
                return
        assert workflow_id is not None
        if cancel_it:
            rec = client.cancel_workflow(workflow_id)
        elif retry_it:
            rec = client.retry_workflow(workflow_id)
        elif wait:
            rec = client.wait_workflow(workflow_id, timeout=timeout)
        else:
            rec = client.workflow(workflow_id)
    if as_json:
        typer.echo(_json(dataclasses.asdict(rec)))
    else:
        Console().print(_workflow_tree(rec))
    if wait and rec.status != "success":
        raise typer.Exit(1)


@app.command()
def workflows(
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List the newest workflows with their status."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        recs = client.list_workflows(limit=limit)
    if as_json:
        typer.echo(_json([dataclasses.asdict(r) for r in recs]))
        return
    if not recs:
        typer.echo("no workflows")
        return
    table = Table(box=None, header_style="bold")
    for col in ("WORKFLOW", "STATUS", "STEPS", "CREATED", "ERROR"):
        table.add_column(col)
    for r in recs:
        tasks = [n for n in r.nodes if n.kind == "task"]
        done = sum(1 for n in tasks if n.state not in (None, "running"))
        table.add_row(r.id, r.status, f"{done}/{len(tasks)}", _fmt_time(r.created_at),
                      (r.error or "-").splitlines()[0][:60])
    Console(width=200).print(table)


@app.command()
def workers(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List workers: alive, lost (no heartbeat) or stopped, with partitions and counts."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        infos = client.workers()
    if as_json:
        typer.echo(_json([w.to_dict() for w in infos]))
        return
    if not infos:
        typer.echo("no workers have registered yet")
        return
    table = Table(box=None, header_style="bold")
    for col in ("WORKER", "STATUS", "HEARTBEAT", "PARTITIONS", "RUNNING", "PROCESSED", "FAILED"):
        table.add_column(col)
    colors = {"alive": "green", "lost": "red", "stopped": "yellow"}
    for w in infos:
        age = f"{time.time() - w.last_heartbeat:.1f}s ago" if w.last_heartbeat else "-"
        shown = f"[{colors[w.status]}]{w.status}[/]" + (" [yellow](quiet)[/]" if w.quiet else "")
        table.add_row(w.id, shown, age,
                      ",".join(map(str, w.partitions)) or "-", f"{w.current_tasks}/{w.concurrency}",
                      str(w.processed), str(w.failed))
    Console().print(table)


@app.command()
def metrics(
    window: Annotated[str, typer.Option("--window", help="How far back: 5m, 1h, 24h or 7d")] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Per task type: finished runs by outcome, failure rate, p50/p95/p99 run and wait times."""
    windows = {"5m": 300.0, "1h": 3600.0, "24h": 86400.0, "7d": 604800.0}
    if window not in windows:
        fail(f"--window {window!r} is not one of 5m, 1h, 24h, 7d", code=2)
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        rows = client.type_metrics(window=windows[window])
    if as_json:
        typer.echo(_json([dataclasses.asdict(m) for m in rows]))
        return
    if not rows:
        typer.echo(f"no task finished in the last {window}")
        return

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}ms" if v < 10 else f"{v:.1f}s"

    table = Table(box=None, header_style="bold", title=f"last {window}",
                  caption=f"percentiles within ±{sketch.RELATIVE_ERROR:.0%} of the true values")
    for col in ("TASK", "DONE", "FAIL%", "RUN p50/p95/p99", "WAIT p50/p95/p99"):
        table.add_column(col)
    for m in rows:
        rate = "-" if m.failure_rate is None else f"{m.failure_rate * 100:.1f}"
        table.add_row(m.task, str(m.finished), rate, "/".join(ms(x) for x in (m.run.p50, m.run.p95, m.run.p99)),
                      "/".join(ms(x) for x in (m.wait.p50, m.wait.p95, m.wait.p99)))
    Console().print(table)


@app.command()
def quiet(
    worker_id: Annotated[str, typer.Argument(help="Worker id (taskq workers lists them)")],
    undo: Annotated[bool, typer.Option("--resume", help="Let the worker take tasks again")] = False,
) -> None:
    """Stop a worker taking new tasks (it finishes its running ones and hands its partitions over), or --resume it."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        client.quiet_worker(worker_id, quiet=not undo)
    typer.echo(f"{worker_id} {'resuming' if undo else 'quiet'} (the worker follows within about a second)")


@app.command()
def pause(
    task: Annotated[str, typer.Argument(help="Task name")],
    undo: Annotated[bool, typer.Option("--resume", help="Start the task type again")] = False,
) -> None:
    """Pause a task type cluster-wide (its tasks wait, kept and in order), or --resume it."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        if undo:
            released = client.resume_task_type(task)["released"]
            typer.echo(f"{task} resumed: {released} held task(s) released, oldest first")
        else:
            client.pause_task_type(task)
            typer.echo(f"{task} paused: workers start none of its tasks until 'taskq pause {task} --resume'")


@app.command()
def top(
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit")] = False,
) -> None:
    """Live view of throughput, lag, workers and the last failures (q or Ctrl-C to leave)."""
    from .top import frame, run

    settings = load_settings()
    # The frame owns stdout: a warning logged there would land inside `taskq top --once > file`.
    setup_logging(settings, kafka_level="CRITICAL", stream=sys.stderr)
    with clear_errors(), Client(settings) as client:
        if once:
            Console(soft_wrap=False).print(frame(client))
            return
        run(client, interval=interval)


@app.command()
def worker(
    worker_id: Annotated[str | None, typer.Option("--id", help="Worker id (default: host-pid)")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, max=1024)] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Module with @task functions (repeatable)")] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve /metrics on this port")] = None,
) -> None:
    """Run a worker until SIGTERM/Ctrl-C (graceful: in-flight tasks finish first)."""
    from .registry import Registry
    from .worker import Worker

    settings = load_settings(concurrency=concurrency, metrics_port=metrics_port)
    wid = worker_id or os.environ.get("TASKQ_WORKER_ID") or default_worker_id()
    setup_logging(settings)
    with clear_errors():
        registry = Registry.load([*settings.tasks_modules, *(tasks or [])])
        w = Worker(settings, worker_id=wid, registry=registry)
        w.install_signal_handlers()
        if settings.metrics_port is not None:
            from .metrics_server import serve_metrics

            serve_metrics(w.metrics.registry, port=settings.metrics_port, host=settings.metrics_host,
                          healthy=w.health)
        clean = w.run()
    sys.stdout.flush()
    # Tasks still running past the grace live in non-daemon threads: leave without joining them.
    os._exit(0 if clean else 3)


@app.command()
def api(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    processes: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="API processes sharing the port (metrics are summed over them)")] = 1,
) -> None:
    """Serve the HTTP API, the web UI (at /) and /metrics."""
    import uvicorn

    from .api.app import create_app
    from .api.exposure import check_exposure

    settings = load_settings()
    setup_logging(settings)
    try:
        warning = check_exposure(settings, host, port)
    except ConfigError as exc:
        fail(str(exc), 2)
    if warning:
        logging.getLogger("taskq.api").warning(warning)
    metrics_port = settings.api_metrics_port
    if metrics_port == port:
        fail(f"TASKQ_API_METRICS_PORT ({metrics_port}) is the API's own --port: choose another, or unset it", 2)
    sockets = [_listen(host, port)] + ([_listen(host, metrics_port)] if metrics_port else [])
    if processes == 1:
        config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, proxy_headers=True,
                                forwarded_allow_ips=settings.api_trusted_proxies)
        try:
            uvicorn.Server(config).run(sockets=sockets)
        finally:
            for sock in sockets:
                sock.close()
        return
    # Each process builds its app from the same TASKQ_* environment; their counters meet in one
    # folder of prometheus_client's multiprocess files (kept if the caller chose one).
    import tempfile

    own = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = tempfile.TemporaryDirectory(prefix="taskq-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own.name
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("taskq.api.app:app_from_environment", factory=True, workers=processes,
                            log_level="warning", access_log=False, proxy_headers=True,
                            forwarded_allow_ips=settings.api_trusted_proxies)
    try:
        Multiprocess(config, sockets=sockets).run()
    finally:
        for sock in sockets:
            sock.close()
        if own is not None:
            own.cleanup()


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket every API process serves from (``fail`` when the port is taken)."""
    # proto=TCP: asyncio sets TCP_NODELAY only on connections accepted from such a socket, and
    # uvicorn's own (proto 0) left every response waiting ~40 ms on Nagle's algorithm.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    sock.set_inheritable(True)
    return sock


@app.command()
def dev(
    workers_n: Annotated[int, typer.Option("--workers", min=1, max=32, help="Worker processes")] = 3,
    port: Annotated[int, typer.Option("--port", help="API/UI port")] = 8000,
    kafka_port: Annotated[int, typer.Option("--kafka-port", help="Kafka port (controller: +1)")] = 9092,
    redis_port: Annotated[int, typer.Option("--redis-port")] = 6379,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 4,
    metrics_port: Annotated[int, typer.Option(
        "--metrics-port", min=0, max=65000, help="Worker N serves /metrics on this + N; 0: no worker metrics")] = 9100,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Module with @task functions")] = None,
    data: Annotated[Path, typer.Option("--data", help="Where Kafka and Redis keep data")] = Path(".taskq/dev"),
    prometheus: Annotated[bool, typer.Option(
        "--prometheus", help="Also run Debian's prometheus scraping the API and every worker, with the chart's "
                             "alert rules")] = False,
    prometheus_port: Annotated[int, typer.Option(
        "--prometheus-port", min=0, max=65535, help="Prometheus' port on 127.0.0.1; 0: a free one")] = 0,
) -> None:
    """Run Kafka, Redis, the API+UI and workers here (and Prometheus with --prometheus); Ctrl-C stops everything."""
    from .devstack.stack import DevStack

    stack = DevStack(root=data.resolve(), workers=workers_n, port=port, kafka_port=kafka_port,
                     redis_port=redis_port, concurrency=concurrency, tasks_modules=list(tasks or []),
                     metrics_port=metrics_port, prometheus=prometheus, prometheus_port=prometheus_port)
    try:
        with clear_errors():
            stack.start()
        stack.wait()
    finally:
        stack.stop()


# --- periodic schedules --------------------------------------------------------
schedule_app = typer.Typer(no_args_is_help=True, help="Add, pause, resume, delete or run a periodic schedule.")
app.add_typer(schedule_app, name="schedule")


def _ago(ts: float | None) -> str:
    """A moment relative to now, short enough for a table: ``in 14.3h``, ``5s ago`` (--json has the time)."""
    if not ts:
        return "-"
    delta = ts - time.time()
    size = abs(delta)
    span = f"{size:.0f}s" if size < 120 else f"{size / 60:.0f}m" if size < 7200 else f"{size / 3600:.1f}h"
    return f"in {span}" if delta > 0 else f"{span} ago"


@app.command("schedules")
def list_schedules(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List periodic schedules: when they run next, their last run and its outcome."""
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        infos = client.schedules()
    if as_json:
        typer.echo(_json([s.to_dict() for s in infos]))
        return
    if not infos:
        typer.echo("no schedules yet: taskq schedule add NAME TASK --cron '*/5 * * * *'")
        return
    table = Table(box=None, header_style="bold")
    for col in ("SCHEDULE", "TASK", "WHEN", "NEXT RUN", "LAST RUN", "OUTCOME", "RUNS", "SOURCE"):
        table.add_column(col, no_wrap=col in ("WHEN", "NEXT RUN", "LAST RUN"))
    for s in infos:
        when = f"every {s.every:g}s" if s.every is not None else s.cron or ""
        if s.cron and s.timezone != "UTC":
            when += f" {s.timezone}"
        table.add_row(s.name, s.task, when, "[yellow]paused[/]" if s.paused else _ago(s.next_at), _ago(s.last_at),
                      s.last_status or "-", str(s.runs), s.source)
    Console().print(table)


@schedule_app.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument(help="Schedule name, e.g. nightly-report")],
    task: Annotated[str, typer.Argument(help="Task name, e.g. add")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments; JSON values where they parse")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron expression, e.g. '*/5 * * * *'")] = None,
    every: Annotated[float | None, typer.Option("--every", help="Interval in seconds")] = None,
    tz: Annotated[str, typer.Option("--timezone", help="IANA timezone of --cron, e.g. Europe/Berlin")] = "UTC",
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="Keyword arguments as a JSON object")] = None,
    catchup: Annotated[int, typer.Option(
        "--catchup", min=0, help="After an outage enqueue at most this many missed ticks (default: skip them)")] = 0,
    grace: Annotated[float, typer.Option("--misfire-grace", help="Seconds late a tick may still run")] = 5.0,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused")] = False,
    max_retries: Annotated[int | None, typer.Option("--max-retries", min=0)] = None,
    task_timeout: Annotated[
        float | None, typer.Option("--time-limit", help="Kill each run after this many seconds")] = None,
) -> None:
    """Create a schedule: --cron EXPR or --every SECONDS. Its first run is the next tick."""
    kw: dict[str, Any] = {}
    if kwargs:
        try:
            kw = orjson.loads(kwargs)
        except orjson.JSONDecodeError as exc:
            fail(f"--kwargs is not valid JSON: {exc}", code=2)
        if not isinstance(kw, dict):
            fail("--kwargs must be a JSON object", code=2)
    settings = load_settings()
    try:
        schedule = Schedule(name, task, [parse_cli_value(a) for a in (args or [])], kw, cron=cron, every=every,
                            timezone=tz, missed="catchup" if catchup else "skip", catchup=catchup,
                            misfire_grace=grace, paused=paused, max_retries=max_retries, timeout=task_timeout)
    except InvalidTask as exc:
        fail(str(exc), code=2)
    with clear_errors(), Client(settings) as client:
        info = client.add_schedule(schedule)
    when = "paused" if info.paused or info.next_at is None else \
        f"{datetime.fromtimestamp(info.next_at).isoformat(sep=' ', timespec='seconds')} ({_ago(info.next_at)})"
    typer.echo(f"{info.name} added: {schedule.task} {schedule.when}; next run {when}")


def _schedule_change(name: str, change: Callable[[Client, str], Any], done: str) -> None:
    settings = load_settings()
    with clear_errors(), Client(settings) as client:
        out = change(client, name)
    typer.echo(f"{name} {done}" + (f": {out}" if isinstance(out, str) else ""))


@schedule_app.command("pause")
def schedule_pause(name: Annotated[str, typer.Argument(help="Schedule name")]) -> None:
    """Stop enqueueing a schedule's ticks until it is resumed."""
    _schedule_change(name, Client.pause_schedule, "paused")


@schedule_app.command("resume")
def schedule_resume(name: Annotated[str, typer.Argument(help="Schedule name")]) -> None:
    """Resume from the next tick (ticks while paused are not caught up)."""
    _schedule_change(name, Client.resume_schedule, "resumed")


@schedule_app.command("delete")
def schedule_delete(name: Annotated[str, typer.Argument(help="Schedule name")]) -> None:
    """Delete a schedule (a code-declared one comes back when a worker declaring it starts)."""
    _schedule_change(name, Client.delete_schedule, "deleted")


@schedule_app.command("run")
def schedule_run(name: Annotated[str, typer.Argument(help="Schedule name")]) -> None:
    """Submit one extra run of the schedule's task now; prints its task id."""
    _schedule_change(name, Client.run_schedule_now, "submitted")


# taskq list, retry, cancel and purge (one task, or every task a filter matches) live in their own module.
from . import cli_tasks  # noqa: E402, F401  - registers its commands on app
from .cli_dead import dead_app  # noqa: E402

app.add_typer(dead_app, name="dead")


def main() -> None:
    app()
