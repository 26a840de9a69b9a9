"""Health, readiness, stats, what the UI needs to know, and Prometheus metrics."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from .. import __version__, limits
from ..errors import TaskqError
from ..models import CANCELLABLE_STATES, RETRYABLE_STATES, TERMINAL_STATES, TaskState
from ..overview import Overview, overview
from .auth import caller
from .deps import ClientDep, require_token
from .readiness import for_caller
from .tasks import MAX_BATCH

router = APIRouter(tags=["system"])
# Dashboards and scrapes ask for the lag often; Kafka is asked at most this often.
LAG_MAX_AGE = 2.0


@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz")
@router.head("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Kafka and Redis are reachable (readiness); 503 names what is not, and says why to a caller
    with a token. Checked at most every 2 s, however often it is asked."""
    checks = request.app.state.readiness.checks()
    ok = all(v == "ok" for v in checks.values())
    shown = for_caller(checks, authenticated=caller(request).role is not None)
    return JSONResponse({"status": "ok" if ok else "unavailable", **shown}, status_code=200 if ok else 503)


@router.get("/api/stats", response_model=Overview, dependencies=[Depends(require_token)])
def stats(request: Request, client: ClientDep) -> Overview:
    """Counts per state, consumer lag, workers alive; finished tasks/s by outcome over the last 10 s
    (``rate``, ``finished_per_second``; ``throughput`` is the last minute's average), the oldest
    ready task's wait (``oldest_queued_age``) and the tasks due later (``scheduled``)."""
    s = client.stats(lag_max_age=LAG_MAX_AGE)
    if s.lag is not None:
        request.app.state.metrics.observe_lag({int(p): v for p, v in s.lag.items()})
    return overview(s, client.store, request.app.state.rate)


@router.get("/api/stats/series", dependencies=[Depends(require_token)])
def stats_series(client: ClientDep) -> list[dict[str, int]]:
    """Finished tasks per 10 s bucket over the last 10 minutes (for charts)."""
    return client.throughput_series()


@router.get("/api/meta", dependencies=[Depends(require_token)])
def meta() -> dict[str, Any]:
    """What clients (the web UI among them) need to know of this server: states and limits."""
    return {
        "version": __version__,
        "states": [s.value for s in TaskState],
        "terminal": sorted(s.value for s in TERMINAL_STATES),
        "cancellable": sorted(s.value for s in CANCELLABLE_STATES),
        "retryable": sorted(s.value for s in RETRYABLE_STATES),
        "limits": {"max_retries": limits.MAX_RETRIES_MAX, "timeout": limits.TIMEOUT_MAX, "delay": limits.DELAY_MAX,
                   "key_length": limits.KEY_MAX, "task_name_length": limits.TASK_NAME_MAX, "batch": MAX_BATCH},
    }


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, client: ClientDep) -> Response:
    m = request.app.state.metrics
    try:
        m.observe_workers(client.workers())
    except TaskqError:
        m.redis_error()
    # A scrape refreshes the lag gauges too: without it they only moved when someone opened the UI.
    with contextlib.suppress(TaskqError):  # Kafka down: the lag gauges keep their last values
        m.observe_lag(client.lag(max_age=LAG_MAX_AGE))
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
