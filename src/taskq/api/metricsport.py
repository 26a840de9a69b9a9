"""``/metrics`` on a port of its own (``TASKQ_API_METRICS_PORT``).

The API process listens on two sockets and this middleware splits them by the port a request
arrived on: the metrics port answers ``/metrics`` and ``/healthz`` only, and the API's port no
longer answers ``/metrics``. So an Ingress that routes the API's port cannot expose the metrics
(task names, queue sizes, worker ids) to the internet, while Prometheus scrapes the pod's metrics
port inside the cluster.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ON_METRICS_PORT = frozenset({"/metrics", "/healthz"})


class MetricsPort:
    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        server = scope.get("server") or (None, None)
        on_metrics_port = server[1] == self.port
        path = scope.get("path", "")
        if on_metrics_port and path not in ON_METRICS_PORT:
            detail = f"port {self.port} serves /metrics and /healthz only"
        elif not on_metrics_port and path == "/metrics":
            detail = f"/metrics is served on port {self.port} (TASKQ_API_METRICS_PORT)"
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await JSONResponse({"detail": detail}, status_code=404)(scope, receive, send)
