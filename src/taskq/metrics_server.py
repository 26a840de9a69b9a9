"""A tiny /metrics HTTP server for worker processes (prometheus-client's own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


def serve_metrics(registry: CollectorRegistry, *, port: int, host: str = "0.0.0.0") -> int:  # noqa: S104
    """Serve ``registry`` on a daemon thread; returns the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_address[1])
