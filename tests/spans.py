"""An OpenTelemetry SDK provider with an in-memory exporter, installed for one test only.

OpenTelemetry lets a process set its global tracer provider once; the tests reset that global
around each use (as opentelemetry-test-utils' ``reset_trace_globals`` does), so the rest of the
suite runs with tracing off, as taskq does by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


def _reset_globals() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # private: what the SDK's own test helpers reset
    trace._TRACER_PROVIDER = None
    trace._PROXY_TRACER_PROVIDER = trace.ProxyTracerProvider()


@contextmanager
def in_memory_spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_globals()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_globals()


@dataclass(frozen=True)
class Span:
    """What the tests compare of a finished span, from the in-memory exporter or a jsonl file."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    start: int
    end: int
    status: str
    attributes: dict[str, object]
    events: list[str]

    @classmethod
    def of(cls, s: ReadableSpan) -> Span:
        ctx = s.get_span_context()
        assert ctx is not None and s.start_time is not None and s.end_time is not None
        return cls(s.name, f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}",
                   f"{s.parent.span_id:016x}" if s.parent is not None else None, s.kind.name, s.start_time,
                   s.end_time, s.status.status_code.name, dict(s.attributes or {}), [e.name for e in s.events])

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Span:
        return cls(str(d["name"]), str(d["trace_id"]), str(d["span_id"]),
                   None if d["parent_span_id"] is None else str(d["parent_span_id"]), str(d["kind"]),
                   int(d["start_time"]), int(d["end_time"]), str(d["status"]),  # type: ignore[call-overload]
                   dict(d["attributes"]),  # type: ignore[call-overload]
                   [str(e["name"]) for e in d["events"]])  # type: ignore[attr-defined, index]


def finished(exporter: InMemorySpanExporter) -> list[Span]:
    return [Span.of(s) for s in exporter.get_finished_spans()]


def of_task(spans: list[Span], task_id: str) -> dict[str, list[Span]]:
    """A task's spans by kind of step: ``submit``, ``wait``, ``run`` (in the order they ended)."""
    out: dict[str, list[Span]] = {"submit": [], "wait": [], "run": []}
    for s in spans:
        if s.attributes.get("taskq.task.id") == task_id:
            out[s.name.split()[1]].append(s)
    return out


def ids(traceparent: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a ``traceparent`` (its flags vary: sampled, random)."""
    return None if traceparent is None else (traceparent[3:35], traceparent[36:52])


def ids_of(s: Span) -> tuple[str, str]:
    return s.trace_id, s.span_id
