"""Health, readiness and metrics endpoints for load balancers and monitoring."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from carerelay.auth.deps import bearer_token, get_db, get_settings_dep, public
from carerelay.core.actor import Actor
from carerelay.core.migrate import head_revision, revision_of
from carerelay.ops.metrics import REGISTRY

log = logging.getLogger("carerelay.ops")

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(actor: Actor = public()) -> dict[str, str]:
    """The process is up and serving; says nothing about the database (that is /readyz)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or schema not current"}})
def readyz(request: Request, actor: Actor = public()) -> JSONResponse:
    try:
        with get_db(request).read_only() as session:
            current = revision_of(session.connection())
    except SQLAlchemyError as exc:
        # The public answer names the kind of failure; the log, for the operator, has the driver's words.
        log.warning("not ready: database unreachable", extra={"error": str(exc).splitlines()[0][:300]})
        return JSONResponse({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"},
                            status_code=503)
    head = head_revision()
    if current != head:
        return JSONResponse({"status": "unavailable", "database": "reachable",
                             "migrations": f"at {current}, head is {head}: run 'carerelay db upgrade'"},
                            status_code=503)
    return JSONResponse({"status": "ready", "database": "reachable", "migrations": current})


@router.get("/metrics", response_class=Response, responses={401: {"description": "CARERELAY_METRICS_TOKEN is set "
                                                                                 "and was not presented"}})
def metrics(request: Request, actor: Actor = public()) -> Response:
    """Open by default, for a scraper on the hospital's network; with ``CARERELAY_METRICS_TOKEN`` set,
    only for whoever presents it (route names, volumes and timer lag say a lot about a hospital's day)."""
    expected = get_settings_dep(request).metrics_token
    if expected and not hmac.compare_digest(bearer_token(request).encode(), expected.encode()):
        return JSONResponse({"detail": "send the metrics token: Authorization: Bearer <CARERELAY_METRICS_TOKEN>"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
