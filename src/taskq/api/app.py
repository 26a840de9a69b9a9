"""Assembles the FastAPI app: routers, error mapping, body limit, static UI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__, tracing
from ..audit import AuditLog
from ..client import Client
from ..errors import TaskqError
from ..metrics import ApiMetrics
from ..overview import FinishRate
from ..settings import Settings
from . import audit, auth, deadletters, events, scheduled, schedules, system, tasks, workers, workflows
from .auth import SignInLimit, require_token
from .errors import on_error, status_of
from .metricsport import MetricsPort
from .readiness import Readiness


def ui_dir() -> Path | None:
    """The web UI's files: shipped inside the package, or the repository's ui/ in a checkout."""
    here = Path(__file__).resolve()
    for candidate in (here.parent.parent / "_ui", here.parents[3] / "ui"):
        if (candidate / "index.html").exists():
            return candidate
    return None


# The web UI's files are revalidated on every load (no build step renames them, so a cached copy
# would outlive an upgrade) and held to their own origin: no inline script, no framing.
UI_HEADERS = MappingProxyType({
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
})


class UiFiles(StaticFiles):
    """The web UI's files, with ``UI_HEADERS``."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(UI_HEADERS)
        return response


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(send)
                return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # Read the body up front (it is at most ``limit`` bytes) so an oversize chunked body is
        # refused before any handler sees it, then replay it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # client went away
            body = msg.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                await self._reject(send)
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        resp = JSONResponse({"detail": f"request body is larger than the limit of {self.limit} bytes"}, 413)
        await resp({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(settings: Settings, *, client: Client | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        flush_spans = tracing.configure(settings, service="taskq-api")  # TASKQ_TRACING; off by default
        yield
        await app.state.client.aclose()
        flush_spans()

    # Responses with a response model go through pydantic-core straight to JSON bytes, which current
    # FastAPI (0.165 here) documents as faster than ORJSONResponse and deprecates that class for.
    # The OpenAPI document and its pages are served under /api (below), behind the read token.
    app = FastAPI(title="taskq", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, description="Submit and inspect tasks of a Kafka + Redis task queue.")
    app.state.settings = settings
    app.state.client = client or Client(settings)
    app.state.readiness = Readiness(app.state.client.ready)
    app.state.sign_in_limit = SignInLimit(settings.api_login_attempts)
    app.state.metrics = ApiMetrics(topic=settings.tasks_topic)
    app.state.rate = FinishRate()  # the overview's finished/s over the last 10 s
    app.state.inflight = 0  # submissions waiting for Kafka (changed on the event loop only)

    count = on_error(app.state.metrics.kafka_error, app.state.metrics.redis_error)

    @app.exception_handler(TaskqError)
    async def _taskq_error(_: Request, exc: TaskqError) -> JSONResponse:
        count(exc)
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        def where(e: dict[str, Any]) -> str:
            return ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"

        messages = [f"{where(e)}: {e.get('msg')}" for e in exc.errors()[:10]]
        return JSONResponse({"detail": "; ".join(messages), "errors": jsonable(exc.errors()[:10])}, 422)

    protected = [Depends(require_token)]
    app.include_router(tasks.router, dependencies=protected)
    app.include_router(workers.router, dependencies=protected)
    app.include_router(schedules.router, dependencies=protected)
    app.include_router(workflows.router, dependencies=protected)
    app.include_router(scheduled.router, dependencies=protected)
    app.include_router(deadletters.router, dependencies=protected)
    app.include_router(audit.router)
    app.include_router(events.router)
    app.include_router(auth.router)
    app.include_router(system.router)
    add_docs(app, protected)
    app.state.audit = AuditLog(app.state.client.store, settings)
    # Inside BodyLimit: a request refused for its size never reached a handler, so changed nothing.
    app.add_middleware(audit.AuditTrail, log=app.state.audit)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.api_metrics_port is not None:
        app.add_middleware(MetricsPort, port=settings.api_metrics_port)

    ui = ui_dir()
    if ui is not None:
        app.mount("/ui", UiFiles(directory=ui, html=True), name="ui")

        @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
        def index() -> RedirectResponse:
            return RedirectResponse("/ui/")
    return app


OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"


def add_docs(app: FastAPI, protected: list[Any]) -> None:
    """The OpenAPI document and its Swagger page, for any caller with a token (the read-only one
    will do): they list every route and parameter of the deployment. Under /api, so a signed-in
    browser's session cookie (path /api) opens them; the old /docs and /openapi.json redirect."""

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=protected)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(DOCS_URL, include_in_schema=False, dependencies=protected)
    def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} API")

    @app.get("/openapi.json", include_in_schema=False)
    def old_openapi() -> RedirectResponse:
        return RedirectResponse(OPENAPI_URL, status_code=308)

    @app.get("/docs", include_in_schema=False)
    def old_docs() -> RedirectResponse:
        return RedirectResponse(DOCS_URL, status_code=308)


def app_from_environment() -> FastAPI:
    """The app with TASKQ_* settings from the environment: what each ``taskq api --workers N`` process runs."""
    return create_app(Settings())


def jsonable(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in errors]
