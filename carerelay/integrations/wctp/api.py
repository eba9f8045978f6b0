"""``POST /wctp``: the WCTP endpoint on the main HTTP port.

Public by policy: WCTP authenticates in the document (senderID + securityCode), which the service
checks. Every answer is HTTP 200 with a WCTP document, whatever went wrong — a body over the limit
(read no further than the limit), a broken database (600, send again), a bug (604) — because
nurse-call servers and carriers act on the WCTP code, and an HTTP 500 tells them nothing.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import OperationalError

from carerelay.auth.deps import client_ip, public
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.paging import service as paging
from carerelay.integrations.wctp import build
from carerelay.integrations.wctp.gateways import gateways_from
from carerelay.integrations.wctp.model import INTERNAL_ERROR, SERVICE_UNAVAILABLE
from carerelay.integrations.wctp.service import ServerConfig, handle_request, redact

log = logging.getLogger("carerelay.wctp")

router = APIRouter(tags=["wctp"])

XML = "text/xml; charset=utf-8"


def server_config(settings: Settings) -> ServerConfig:
    return ServerConfig(responder=settings.wctp_responder, max_bytes=settings.wctp_max_bytes,
                        poll_interval=settings.wctp_poll_interval_seconds, gateways=tuple(gateways_from(settings)))


async def _read_limited(request: Request, limit: int) -> tuple[bytes, int | None]:
    """The body, or its first ``limit + 1`` bytes and the declared size when it is too big."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"", int(declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[: limit + 1], size
    return b"".join(chunks), None


def _record_failure(db: Database, clock: Clock, raw: bytes, peer: str | None, code: int, reason: str) -> None:
    """The request could not be handled; keep that fact if the database lets us."""
    try:
        with db.unit_of_work() as session:
            paging.refuse(session=session, clock=clock, code=code, reason=reason,
                          page=paging.Page(channel="wctp", recipient_id=None, text="", peer=peer, raw=raw))
    except Exception:
        log.exception("could not record a failed WCTP request")


@router.post("/wctp", response_class=Response, responses={200: {"content": {"text/xml": {}}}},
             summary="WCTP 1.3 endpoint (nurse call, telemetry, paging carriers)")
async def wctp(request: Request, actor: Actor = public()) -> Response:
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    config: ServerConfig = getattr(request.app.state, "wctp_config", None) or server_config(settings)
    request.app.state.wctp_config = config
    raw, too_big = await _read_limited(request, config.max_bytes)
    peer = client_ip(request)
    try:
        # The request's own unit of work, run whole in one thread (Database.run): on SQLite in the
        # writer's, so submits arriving together share one COMMIT and one audit-chain append; the
        # answer goes out only once that COMMIT is durable, and a failed COMMIT lands below too.
        answer = await db.run(lambda session: handle_request(
            session=session, clock=clock, raw=raw, peer=peer, config=config, declared_size=too_big))
    except Exception as exc:
        unavailable = isinstance(exc, OperationalError)
        code = SERVICE_UNAVAILABLE if unavailable else INTERNAL_ERROR
        log.exception("wctp request failed", extra={"peer": peer, "code": code})
        reason = "the database is not reachable; send again" if unavailable else "internal error; send again"
        await db.in_thread(_record_failure, db, clock, redact(raw[:65536]), peer, code, reason)
        return Response(build.confirmation(code, None, detail=reason), media_type=XML)
    return Response(answer.body, media_type=XML)
