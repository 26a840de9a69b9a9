"""Property-based fuzzing of the OpenAPI schema (schemathesis + hypothesis): no input yields a 500.

Drives schemathesis' strategies directly (its pytest plugin does not load under pytest 9).
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from taskq.api.app import create_app
from taskq.kafka import ensure_topics
from taskq.settings import Settings

# Per operation: enough in make test to reach every route's error paths; make fuzz runs 100.
EXAMPLES = int(os.environ.get("TASKQ_API_FUZZ_EXAMPLES", "12"))


def test_no_generated_request_yields_a_server_error(settings: Settings) -> None:
    ensure_topics(settings)
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    tried: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/events":
            continue  # an endless SSE stream by design; covered in test_api
        tried.append(f"{op.method.upper()} {op.path}")

        @given(case=op.as_strategy())
        @hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)

        check()
    assert "POST /api/tasks" in tried and "GET /api/tasks/{task_id}" in tried
