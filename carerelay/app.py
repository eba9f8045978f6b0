"""The HTTP application: routers of every domain, error mapping, metrics, and the docs served locally."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carerelay import __version__
from carerelay.alerts.api import reports_router
from carerelay.alerts.api import router as alerts_router
from carerelay.audit.api import router as audit_router
from carerelay.auth.api import router as auth_router
from carerelay.auth.deps import public
from carerelay.config import ConfigError, Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock, FileClock, SystemClock
from carerelay.core.crypto import KeyRing, load_key_ring
from carerelay.core.db import Database, make_engine
from carerelay.core.errors import (
    CarerelayError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from carerelay.core.fastlane import FastLanes
from carerelay.core.schemas import ErrorBody
from carerelay.directory.api import router as directory_router
from carerelay.escalation.api import router as escalation_router
from carerelay.escalation.auditor import AuditorConfig
from carerelay.integrations.exports import worker as exports_worker
from carerelay.integrations.exports.api import router as exports_router
from carerelay.integrations.hl7.api import router as hl7_router
from carerelay.integrations.hl7.listener import Hl7Runtime
from carerelay.integrations.paging.api import router as paging_router
from carerelay.integrations.paging.listeners import PagingRuntime
from carerelay.integrations.scim.api import PREFIX as SCIM_PREFIX
from carerelay.integrations.scim.api import router as scim_router
from carerelay.integrations.scim.api import scim_error_response, scim_validation_response
from carerelay.integrations.sso.api import router as sso_router
from carerelay.integrations.sso.config import load_providers
from carerelay.integrations.wctp.api import router as wctp_router
from carerelay.integrations.wctp.worker import WctpWorker
from carerelay.jobs import worker as jobs_worker
from carerelay.messaging.api import SEND_LANE
from carerelay.messaging.api import router as messaging_router
from carerelay.notifications.service import build_channels
from carerelay.ops.api import router as ops_router
from carerelay.ops.metrics import HTTP_LATENCY, HTTP_REQUESTS
from carerelay.patients.api import router as patients_router
from carerelay.realtime import pglisten, presence
from carerelay.realtime.api import router as realtime_router
from carerelay.realtime.hub import Hub
from carerelay.routing.api import router as routing_router
from carerelay.scheduling.api import router as scheduling_router
from carerelay.staffing import runner as staffing_runner
from carerelay.staffing.api import router as staffing_router
from carerelay.web.routes import router as web_router

log = logging.getLogger("carerelay.app")

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"

# Nurse-call submits, messaging, the sockets, device alerts and their answers: matched before every other
# router. `/wctp` is one route tried first; the send itself usually never reaches the router (core/fastlane.py).
HOT_ROUTERS = (wctp_router, messaging_router, realtime_router, alerts_router)

_STATUS: dict[type[CarerelayError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Forbidden: 403,
    Unauthenticated: 401,
    TooManyAttempts: 429,
}


ERROR_RESPONSES: dict[int, str] = {
    401: "Not signed in, or the token or session is not valid here",
    403: "Not allowed for this caller",
    404: "No such thing, or not one this caller may see",
    409: "Conflicts with what is stored",
    422: "The request is invalid; 'field' names the first field at fault",
}


def _document_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the error answers every route can give in the shape they have.

    Every refusal is an ``ErrorBody`` (``detail`` as one line, ``field``), raised by the route's
    policy or by the service it calls; FastAPI's default document shows neither the 401/403/404/409
    answers nor this body, so clients (and schemathesis) would be told a different contract.
    """
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for fastapi_default in ("HTTPValidationError", "ValidationError"):
            schemas.pop(fastapi_default, None)
        schemas["ErrorBody"] = ErrorBody.model_json_schema()
        error = {"$ref": "#/components/schemas/ErrorBody"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                codes = dict(ERROR_RESPONSES)
                if "requestBody" in operation:
                    codes[400] = "The body could not be read (not UTF-8, or a broken form)"
                for code, description in codes.items():
                    _add_error(responses.setdefault(str(code), {"description": description}), error)
        app.openapi_schema = schema
        return schema

    return openapi


def _add_error(documented: dict[str, Any], error: dict[str, Any]) -> None:
    """An error answer is an ErrorBody — or, where the route documents a body of its own for that
    status (an import's report of refused rows), either."""
    content = documented.setdefault("content", {}).setdefault("application/json", {})
    own = content.get("schema")
    if own is None or "HTTPValidationError" in str(own):
        content["schema"] = error
    elif own != error:
        content["schema"] = {"anyOf": [own, error]}


def _status_for(exc: CarerelayError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def _is_scim(request: Request) -> bool:
    return request.url.path.startswith(SCIM_PREFIX + "/") or request.url.path == SCIM_PREFIX


async def _carerelay_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CarerelayError)
    if _is_scim(request):
        return scim_error_response(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    body: dict[str, Any] = {"detail": exc.message}
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=_status_for(exc), headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 whose first line names the field, with the full list for programs."""
    assert isinstance(exc, RequestValidationError)
    errors = _finite(jsonable_encoder(exc.errors()))
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", []) if p != "body") or "request"
    if _is_scim(request):
        return scim_validation_response(f"{where}: {first.get('msg')}")
    return JSONResponse({"detail": f"{where}: {first.get('msg')}", "field": where, "errors": errors},
                        status_code=422)


def _finite(value: Any) -> Any:
    """The errors echo the input, and JSON has no NaN or Infinity (which Python's parser accepts): those
    are echoed as text, so a body with ``NaN`` in it gets its 422 instead of a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class Measure:
    """Request count and latency per route, as plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs a
    task and two memory streams per request, on the path every message takes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route, str(status[0])).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def _lazy_key_ring(settings: Settings) -> Callable[[], KeyRing]:
    """Load (or, on a first single-node start, create) the attachment key ring when first needed."""
    ring: list[KeyRing] = []

    def get() -> KeyRing:
        if not ring:
            ring.append(load_key_ring(settings.attachment_keys, Path(settings.attachment_key_file)))
        return ring[0]

    return get


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock | None = None,
               listeners: bool = False, fast_lanes: bool = True) -> FastAPI:
    """``listeners``: also run the protocol listeners (MLLP) in this event loop — ``carerelay serve``.
    ``fast_lanes``: serve the send route's usual requests past FastAPI's routing (core/fastlane.py); its
    tests turn them off to compare."""
    database = db or Database(make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous))

    hub = Hub()
    database.after_commit.append(hub.after_commit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        sockets = asyncio.create_task(presence.sweep_forever(database, app.state.clock, settings, hub))
        listener = None
        if database.dialect == "postgresql":
            listener = asyncio.create_task(pglisten.listen_forever(pglisten.conninfo(database.engine.url), hub))
        # Background loops of this node, stopped in reverse order at shutdown.
        background: list[asyncio.Task[None]] = []
        wctp_worker = WctpWorker(settings)
        if settings.run_timers:
            background.append(asyncio.create_task(jobs_worker.run_forever(
                database, app.state.clock, build_channels(settings),
                also=[lambda: wctp_worker.run_once(database, app.state.clock)],
                schedule_sync=settings.schedule_sync, timer_threads=settings.timer_threads,
                auditor=AuditorConfig(settings.auditor_interval_seconds, settings.auditor_max_timer_lag_seconds,
                                      settings.auditor_shift_horizon_hours))))
            background.append(asyncio.create_task(exports_worker.run_forever(database, app.state.clock)))
            background.append(asyncio.create_task(staffing_runner.run_forever(database, app.state.clock)))
        hl7_runtime = None
        paging_runtime = None
        if listeners:
            hl7_runtime = Hl7Runtime(db=database, settings=settings, clock=app.state.clock)
            await hl7_runtime.start()
            paging_runtime = PagingRuntime(db=database, settings=settings, clock=app.state.clock)
            await paging_runtime.start()
        app.state.hl7 = hl7_runtime
        app.state.paging = paging_runtime
        log.info("carerelay started", extra={"version": __version__, "database": database.dialect})
        try:
            yield
        finally:
            if paging_runtime is not None:
                await paging_runtime.stop()
            if hl7_runtime is not None:
                await hl7_runtime.stop()
            for task in reversed(background):
                await jobs_worker.stop(task)
            wctp_worker.close()
            if listener is not None:
                await pglisten.stop(listener)
            await jobs_worker.stop(sockets)
            hub.bind(None)
            log.info("carerelay shutdown complete")

    app = FastAPI(
        title="carerelay",
        version=__version__,
        description="Clinical communication and collaboration platform API.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.clock = clock or (FileClock(Path(settings.test_clock_file)) if settings.test_clock_file
                                else SystemClock())
    app.state.hub = hub
    app.state.keys = _lazy_key_ring(settings)
    try:
        app.state.sso_providers = load_providers(settings.sso_providers_file)
    except CarerelayError as exc:
        raise ConfigError(f"invalid setting CARERELAY_SSO_PROVIDERS_FILE: {exc.message}") from None
    app.state.hl7 = None

    app.openapi = _document_errors(app)  # type: ignore[method-assign]
    app.add_exception_handler(CarerelayError, _carerelay_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

    if fast_lanes:
        app.add_middleware(FastLanes, lanes=[SEND_LANE])
    app.add_middleware(Measure)

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(actor: Actor = public()) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="carerelay API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    # A request is tried against the routes in this order, about 3 µs a route: the busiest come
    # first (no two routers share a path: tests/unit/test_route_order.py).
    for router in (*HOT_ROUTERS, ops_router, auth_router, directory_router, patients_router, escalation_router,
                   routing_router, scheduling_router, audit_router, scim_router, sso_router, hl7_router,
                   exports_router, staffing_router, web_router, paging_router, reports_router):
        app.include_router(router)
    return app
