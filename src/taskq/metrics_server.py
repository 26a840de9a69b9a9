"""The worker's small HTTP server: ``/metrics`` for Prometheus and ``/healthz`` for liveness probes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def serve_metrics(registry: CollectorRegistry, *, port: int, host: str = "0.0.0.0",  # noqa: S104 - scraped by Prometheus
                  healthy: Callable[[], tuple[bool, str]] | None = None) -> ThreadingHTTPServer:
    """Serve on a daemon thread; ``healthy`` answers /healthz (200 or 503 with the reason)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok, why = healthy() if healthy else (True, "ok")
                self._reply(200 if ok else 503, why.encode(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: try /metrics or /healthz", "text/plain; charset=utf-8")

        def _reply(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes are not log lines
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="taskq-metrics", daemon=True).start()
    return server
