"""W3C trace context from the submitter to the worker, with OpenTelemetry spans (opentelemetry-api).

With no OpenTelemetry SDK configured the API is a no-op: nothing is recorded and no trace context
is invented; a submitter inside an active span passes that span's context on.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The active span's context as a ``traceparent`` header value, or None when there is none."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
