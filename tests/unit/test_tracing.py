"""Trace context in the Kafka headers, and the spans of submit, wait and run (no Kafka, no Redis)."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from opentelemetry import trace
from pydantic import ValidationError

from taskq import tracing
from taskq.errors import ConfigError
from taskq.kafka.memory import MemoryTransport
from taskq.models import TaskMessage
from taskq.settings import Settings
from taskq.worker.execute import Outcome
from tests.spans import Span, _reset_globals, finished, ids, ids_of, in_memory_spans

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Listener:
    def on_assigned(self, partitions: set[int]) -> None: ...

    def on_revoked(self, partitions: set[int], *, lost: bool) -> None: ...


def test_a_traceparent_survives_the_trip_through_the_headers_and_a_plain_message_has_none() -> None:
    settings = Settings(tasks_topic="t-headers", partitions=1)
    t = MemoryTransport(settings)
    t.admin().ensure_topics()
    traced = TaskMessage(id="a", task="add", args=[1, 2], trace=TP)
    plain = TaskMessage(id="b", task="add", args=[1, 2])
    t.producer().send([traced, plain])
    got = t.consumer(client_id="c", listener=_Listener()).poll(0, 10)
    assert [r.headers for r in got] == [[("traceparent", TP.encode())], None]
    received = [tracing.from_headers(TaskMessage.from_bytes(r.value), r.headers) for r in got]
    assert received == [traced, plain]


@pytest.mark.parametrize("headers", [
    None, [], [("other", b"x")], [("traceparent", b"not-a-trace")], [("traceparent", b"\xff\xfe")],
    [("traceparent", b"00-00000000000000000000000000000000-b7ad6b7169203331-01")],
])
def test_a_missing_or_invalid_traceparent_header_leaves_the_message_without_a_trace(
    headers: list[tuple[str, bytes]] | None,
) -> None:
    msg = TaskMessage(id="a", task="add")
    assert tracing.from_headers(msg, headers).trace is None


def test_the_tracing_setting_names_a_known_exporter() -> None:
    assert Settings().tracing == "none"
    assert Settings(tracing="jsonl:/tmp/spans.jsonl").tracing == "jsonl:/tmp/spans.jsonl"
    for bad in ("jaeger", "jsonl:", "OTLP"):
        with pytest.raises(ValidationError, match="use none, console, otlp or jsonl:<path>"):
            Settings(tracing=bad)


def test_without_a_provider_nothing_is_traced_and_none_is_installed() -> None:
    _reset_globals()
    assert tracing.configure(Settings(), service="taskq-worker") is not None
    assert not tracing.enabled()
    msg = TaskMessage(id="a", task="add", trace=TP)
    assert tracing.submitting([msg]) is None
    assert tracing.start_run(msg, attempt=1, worker="w") is None
    tracing.end_run(None, Outcome(True))  # a no-op


def test_otlp_without_its_exporter_package_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _reset_globals()
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match="install opentelemetry-exporter-otlp-proto-http"):
        tracing.configure(Settings(tracing="otlp"), service="taskq-worker")
    assert not tracing.enabled()


def test_the_run_span_is_the_submitters_child_and_current_while_the_task_runs() -> None:
    created = time.time() - 2.0
    msg = TaskMessage(id="t1", task="add", created_at=created, trace=TP)
    with in_memory_spans() as exporter:
        run = tracing.start_run(msg, attempt=2, worker="w1")
        inside = tracing.current_traceparent()
        tracing.end_run(run, Outcome(True, result=3))
        assert tracing.current_traceparent() is None  # detached again
        wait, ran = finished(exporter)
    assert (wait.name, ran.name, ran.kind) == ("taskq wait add", "taskq run add", "CONSUMER")
    assert wait.trace_id == ran.trace_id == TP[3:35]
    assert wait.parent_id == ran.parent_id == TP[36:52]
    assert ids(inside) == ids_of(ran)  # what the task's own instrumented calls continue from
    assert abs(wait.start - created * 1e9) < 1e6 and wait.end <= ran.start
    assert ran.attributes["taskq.task.id"] == "t1" and ran.attributes["taskq.attempt"] == 2
    assert ran.attributes["taskq.worker"] == "w1" and ran.attributes["taskq.outcome"] == "success"
    assert ran.status == "UNSET" and ran.events == []


def test_a_failed_run_has_error_status_and_the_exception() -> None:
    msg = TaskMessage(id="t2", task="boom", trace=TP)
    with in_memory_spans() as exporter:
        run = tracing.start_run(msg, attempt=1, worker="w1")
        tracing.end_run(run, Outcome(False, error="ValueError: no", traceback="Traceback ...\nValueError: no"))
        (ran,) = [s for s in finished(exporter) if s.name.startswith("taskq run")]
        (raw,) = [s for s in exporter.get_finished_spans() if s.name.startswith("taskq run")]
    assert ran.status == "ERROR" and ran.events == ["exception"]
    assert raw.status.description == "ValueError: no"
    assert dict(raw.events[0].attributes or {})["exception.type"] == "ValueError"
    assert ran.attributes["taskq.outcome"] == "failed"


def test_a_run_the_worker_could_not_start_is_an_error_of_type_task_error() -> None:
    with in_memory_spans() as exporter:
        run = tracing.start_run(TaskMessage(id="t4", task="add", trace=TP), attempt=1, worker="w1")
        tracing.end_run(run, Outcome(False, error="the worker could not run the task: OSError: no fork"))
        (raw,) = [s for s in exporter.get_finished_spans() if s.name.startswith("taskq run")]
    assert dict(raw.events[0].attributes or {})["exception.type"] == "TaskError"


def test_a_task_submitted_without_a_trace_runs_in_a_new_trace_of_its_own() -> None:
    with in_memory_spans() as exporter:
        run = tracing.start_run(TaskMessage(id="t3", task="add"), attempt=1, worker="w1")
        tracing.end_run(run, Outcome(True))
        (ran,) = finished(exporter)
    assert ran.name == "taskq run add" and ran.parent_id is None
    assert float(ran.attributes["taskq.wait_seconds"]) >= 0  # type: ignore[arg-type]


def test_submit_spans_are_children_of_the_callers_trace_and_the_messages_carry_them() -> None:
    msgs = [TaskMessage(id="s1", task="add", trace=TP), TaskMessage(id="s2", task="add")]
    with in_memory_spans() as exporter:
        spans = tracing.submitting(msgs)
        assert spans is not None
        spans.end(RuntimeError("Kafka is down"))
        first, second = finished(exporter)
    assert (first.name, first.kind, first.trace_id, first.parent_id) == ("taskq submit add", "PRODUCER",
                                                                         TP[3:35], TP[36:52])
    assert second.parent_id is None and second.trace_id != first.trace_id  # no caller's trace: a new one
    assert [ids(m.trace) for m in spans.messages] == [ids_of(first), ids_of(second)]
    assert first.status == "ERROR" and "exception" in first.events


def test_jsonl_writes_one_json_object_per_finished_span(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    _reset_globals()
    try:
        flush = tracing.configure(Settings(tracing=f"jsonl:{path}"), service="taskq-test")
        assert tracing.enabled()
        run = tracing.start_run(TaskMessage(id="j1", task="add", trace=TP), attempt=1, worker="w1")
        tracing.end_run(run, Outcome(True))
        flush()
        lines = [json.loads(line) for line in path.read_text().splitlines()]
    finally:
        _reset_globals()
    spans = [Span.from_json(d) for d in lines]
    assert [s.name for s in spans] == ["taskq wait add", "taskq run add"]
    assert {s.trace_id for s in spans} == {TP[3:35]} and {s.parent_id for s in spans} == {TP[36:52]}
    assert {d["service"] for d in lines} == {"taskq-test"}


def test_jsonl_to_a_path_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    _reset_globals()
    with pytest.raises(ConfigError, match="cannot open the file"):
        tracing.configure(Settings(tracing=f"jsonl:{tmp_path}/missing/dir/spans.jsonl"), service="x")
    assert not tracing.enabled()


def test_otlp_exports_the_spans_to_the_collector_the_otel_variables_name(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")  # taskq[otlp]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-worker")
    _reset_globals()
    try:
        flush = tracing.configure(Settings(tracing="otlp"), service="taskq-worker")
        run = tracing.start_run(TaskMessage(id="o1", task="add", trace=TP), attempt=1, worker="w1")
        tracing.end_run(run, Outcome(True))
        flush()
        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    finally:
        _reset_globals()
        server.shutdown()
        server.server_close()
    assert received and {path for path, _ in received} == {"/v1/traces"}
    spans, services = [], set()
    for _, body in received:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
            spans += [s for ss in rs.scope_spans for s in ss.spans]
    assert sorted(s.name for s in spans) == ["taskq run add", "taskq wait add"]
    assert {s.trace_id.hex() for s in spans} == {TP[3:35]} and {s.parent_span_id.hex() for s in spans} == {TP[36:52]}
    assert services == {"checkout-worker"}  # OTEL_SERVICE_NAME wins over taskq's default
