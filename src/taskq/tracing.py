"""W3C trace context from the submitter to the worker, with OpenTelemetry spans (opentelemetry-api).

A task's ``traceparent`` travels in its Kafka message's headers (``TaskMessage.headers()``) and in
its Redis record, so retries, delayed and held-back tasks stay in the trace they were submitted in.
The spans, when a tracer provider is installed (by the application, or by ``configure`` from
``TASKQ_TRACING`` at the worker's and the API's start):

- ``taskq submit <task>`` (PRODUCER), around a submit in the SDK and the API; its context is what the
  message carries, so the worker's spans are its children;
- ``taskq wait <task>``, from the task's creation to the start of a run (the ``taskq_task_wait_seconds``
  metric's span, made with explicit start and end times);
- ``taskq run <task>`` (CONSUMER), around each run, current while the task's function runs (a task
  that makes instrumented calls continues the trace); status ERROR with an ``exception`` event when
  the run fails.

With no provider installed the API is a no-op: no span is made, and a submitter inside an active
span (or an HTTP request with a ``traceparent`` header) passes that context on as it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import Token
from typing import IO, TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import limits
from .errors import ConfigError
from .models import TaskMessage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

    from .settings import Settings
    from .worker.execute import Outcome

log = logging.getLogger("taskq.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()
HEADER = "traceparent"


def _tracer() -> trace.Tracer:
    from . import __version__  # set once the package has imported its modules (this one among them)

    return trace.get_tracer("taskq", __version__)


def enabled() -> bool:
    """Whether a tracer provider is installed (before one is, the API's proxy records nothing)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def current_traceparent() -> str | None:
    """The active span's context as a ``traceparent`` header value, or None when there is none."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(HEADER)


def valid_traceparent(value: str | bytes | None) -> str | None:
    """``value`` if it is a W3C traceparent, else None: an invalid one starts a new trace, as W3C says."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if value is None or limits.traceparent_problem(value) is not None:
        return None
    return value


def from_headers(msg: TaskMessage, headers: Sequence[tuple[str, bytes]] | None) -> TaskMessage:
    """The consumed message with the trace context of its Kafka headers (the body does not carry it)."""
    if not headers:
        return msg
    for name, value in headers:
        if name == HEADER:
            tp = valid_traceparent(value)
            return dataclasses.replace(msg, trace=tp) if tp else msg
    return msg


def _parent(traceparent: str | None) -> otel_context.Context:
    """The context to start a span in: the remote parent, or an empty one (a new trace)."""
    if traceparent is None:
        return otel_context.Context()
    return _PROPAGATOR.extract({HEADER: traceparent}, context=otel_context.Context())


def _traceparent_of(span: trace.Span) -> str | None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _attributes(msg: TaskMessage) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.message.id": msg.id,
        "taskq.task.id": msg.id,
        "taskq.task.name": msg.task,
    }
    if msg.priority != "normal":
        attrs["taskq.priority"] = msg.priority
    return attrs


# --- submit ---------------------------------------------------------------------------
class Submitting:
    """The PRODUCER spans of a batch of submissions: ``messages`` carry their spans' contexts.

    Each span's parent is its message's trace as the submitter set it (a caller's ``traceparent``, or
    the active span). ``end`` closes them all, with the error if the submit failed."""

    def __init__(self, messages: Sequence[TaskMessage]) -> None:
        tracer = _tracer()
        self.spans: list[trace.Span] = []
        self.messages: list[TaskMessage] = []
        for m in messages:
            # A message without a trace starts from the current context: an active span, or none.
            parent = _parent(m.trace) if m.trace is not None else None
            # It starts at the message's creation, where the task's wait (a child) starts too.
            span = tracer.start_span(f"taskq submit {m.task}", context=parent, kind=SpanKind.PRODUCER,
                                     attributes={**_attributes(m), "messaging.operation.type": "send"},
                                     start_time=min(time.time_ns(), int(m.created_at * 1e9)))
            self.spans.append(span)
            tp = _traceparent_of(span)
            self.messages.append(dataclasses.replace(m, trace=tp) if tp else m)

    def end(self, error: BaseException | None = None) -> None:
        for span in self.spans:
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.record_exception(error)
            span.end()

    def __enter__(self) -> Submitting:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.end(exc)


def submitting(messages: Sequence[TaskMessage]) -> Submitting | None:
    """Producer spans for ``messages``, or None when no tracer provider is installed (nothing to do)."""
    return Submitting(messages) if enabled() else None


# --- run ------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Run:
    """A run's span, current on the thread (or asyncio task) that runs the function until ``end_run``."""

    span: trace.Span
    token: Token[otel_context.Context]


def start_run(msg: TaskMessage, *, attempt: int, worker: str) -> Run | None:
    """Record the queue wait and start the run span of one attempt; None when tracing is off."""
    if not enabled():
        return None
    tracer = _tracer()
    now = time.time_ns()
    parent = _parent(msg.trace)
    attrs = {**_attributes(msg), "taskq.attempt": attempt, "taskq.worker": worker}
    wait_start = min(now, int(msg.created_at * 1e9))  # a submitter's clock ahead of ours: no negative wait
    if msg.trace is not None:
        # A sibling of the run under the submitter's span. Without a submitter's trace the wait would
        # be a trace of its own: the run's attribute says it instead.
        tracer.start_span(f"taskq wait {msg.task}", context=parent, start_time=wait_start,
                          attributes=attrs).end(end_time=now)
    span = tracer.start_span(f"taskq run {msg.task}", context=parent, kind=SpanKind.CONSUMER, start_time=now,
                             attributes={**attrs, "messaging.operation.type": "process",
                                         "taskq.wait_seconds": (now - wait_start) / 1e9})
    token = otel_context.attach(trace.set_span_in_context(span))
    return Run(span, token)


def end_run(run: Run | None, outcome: Outcome) -> None:
    """End a run's span with its outcome (from the thread or asyncio task that started it)."""
    if run is None:
        return
    span = run.span
    otel_context.detach(run.token)
    span.set_attribute("taskq.outcome", "success" if outcome.ok else "cancelled" if outcome.cancelled else "failed")
    if not outcome.ok and not outcome.cancelled:
        error = outcome.error or "failed"
        # A record's error reads "ValueError: ..." (execute.error_text); the worker's own ones are sentences.
        kind, _, message = error.partition(": ")
        if not (message and kind.replace(".", "_").isidentifier()):
            kind = "TaskError"
        span.set_status(Status(StatusCode.ERROR, error))
        event: dict[str, str] = {"exception.type": kind, "exception.message": error}
        if outcome.traceback:
            event["exception.stacktrace"] = outcome.traceback
        span.add_event("exception", event)
        span.set_attribute("taskq.retryable", outcome.retryable)
    span.end()


# --- exporters, from TASKQ_TRACING ------------------------------------------------------
class JsonLinesExporter:
    """Writes one JSON object per finished span to a file (``TASKQ_TRACING=jsonl:<path>``), appending."""

    def __init__(self, path: str) -> None:
        try:
            self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the provider
        except OSError as exc:
            raise ConfigError(f"TASKQ_TRACING=jsonl:{path}: cannot open the file: {exc.strerror}") from exc
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(span_dict(s), separators=(",", ":"), default=str) + "\n" for s in spans)
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._file.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
        return True


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as the jsonl exporter writes it: ids in hex, times in nanoseconds since the epoch."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "kind": span.kind.name,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "service": span.resource.attributes.get("service.name"),
    }


def _exporter(setting: str) -> tuple[SpanExporter, bool]:
    """The exporter ``TASKQ_TRACING`` names, and whether it is written span by span (no batching)."""
    if setting == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError("TASKQ_TRACING=otlp needs the OTLP exporter: install "
                              "opentelemetry-exporter-otlp-proto-http (taskq's extra 'otlp')") from exc
        return OTLPSpanExporter(), False  # OTEL_EXPORTER_OTLP_* variables configure it
    if setting == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), False
    # jsonl: each span as it ends, so the file is complete even if the process is killed.
    return JsonLinesExporter(setting.removeprefix("jsonl:")), True  # type: ignore[return-value]


def configure(settings: Settings, *, service: str) -> Callable[[], None]:
    """Install an SDK tracer provider as ``TASKQ_TRACING`` says; returns what flushes it at the stop.

    ``none`` (the default) installs nothing; nor does any setting when the process already has a
    provider (the application's own, or one installed earlier). ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` name the service as usual; unset, it is ``service``."""
    setting = settings.tracing
    if setting == "none":
        return _nothing
    if enabled():
        log.info("TASKQ_TRACING=%s: a tracer provider is installed already; keeping it", setting)
        return _nothing
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigError(f"TASKQ_TRACING={setting} needs the OpenTelemetry SDK: install opentelemetry-sdk "
                          "(taskq's extra 'otlp' brings it)") from exc
    exporter, each = _exporter(setting)
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter) if each else BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans to %s as service %s", setting, resource.attributes.get("service.name"))

    def flush() -> None:
        provider.force_flush(timeout_millis=5000)

    return flush


def _nothing() -> None:
    """Nothing to flush: taskq installed no provider."""
