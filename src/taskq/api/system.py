"""Health, readiness, stats and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ..client import Client
from ..errors import TaskqError
from .deps import ClientDep, require_token
from .schemas import Stats

router = APIRouter(tags=["system"])
LAG_CACHE_SECONDS = 2.0


@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz")
@router.head("/readyz", include_in_schema=False)
def readyz(client: ClientDep) -> JSONResponse:
    """Kafka and Redis are reachable (readiness); 503 names what is not."""
    checks: dict[str, str] = {}
    try:
        client.store.ping()
        checks["redis"] = "ok"
    except TaskqError as exc:
        checks["redis"] = str(exc)
    try:
        client.admin.ping(timeout=3.0)
        checks["kafka"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, and we say which
        checks["kafka"] = f"Kafka is unreachable: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


def _lag(request: Request, client: Client) -> dict[str, int] | None:
    """Consumer lag per partition, asked of Kafka at most every LAG_CACHE_SECONDS; also the lag gauges."""
    cache = request.app.state.lag_cache
    if time.monotonic() - cache.get("at", 0) > LAG_CACHE_SECONDS:
        try:
            cache["lag"] = {str(p): v for p, v in client.lag().items()}
        except TaskqError:
            cache["lag"] = None
        cache["at"] = time.monotonic()
    lag: dict[str, int] | None = cache.get("lag")
    if lag is not None:
        request.app.state.metrics.observe_lag({int(p): v for p, v in lag.items()})
    return lag


@router.get("/api/stats", response_model=Stats, dependencies=[Depends(require_token)])
def stats(request: Request, client: ClientDep) -> Stats:
    """Counts per state, finished tasks/s over the last minute, consumer lag, workers alive."""
    counts = client.store.counts()
    alive = sum(1 for w in client.store.workers() if w.status == "alive")
    lag = _lag(request, client)
    return Stats(counts=counts, workers_alive=alive, throughput=client.store.throughput(), lag=lag,
                 lag_total=sum(lag.values()) if lag is not None else None)


@router.get("/api/stats/series", dependencies=[Depends(require_token)])
def stats_series(client: ClientDep) -> list[dict[str, int]]:
    """Finished tasks per 10 s bucket over the last 10 minutes (for charts)."""
    return client.store.throughput_series()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, client: ClientDep) -> Response:
    m = request.app.state.metrics
    try:
        m.observe_workers(client.store.workers())
    except TaskqError:
        m.redis_error()
    # A scrape refreshes the lag gauges too: without it they only moved when someone opened the UI.
    _lag(request, client)
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
