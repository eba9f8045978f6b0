"""Audit search and chain verification for compliance officers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from carerelay.audit import service
from carerelay.audit.schemas import AuditEntryOut, ChainReportOut
from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.directory.models import Role

router = APIRouter(prefix="/api/audit", tags=["audit"])

AUDITORS = (Role.COMPLIANCE_OFFICER, Role.SYSTEM_ADMIN)


@router.get("", response_model=list[AuditEntryOut])
def search(
    session: DbSession,
    clock: ClockDep,
    actor_id: Annotated[int | None, Query()] = None,
    object_type: Annotated[str | None, Query(max_length=60)] = None,
    object_id: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=80)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: Actor = allow(*AUDITORS),
) -> list[AuditEntryOut]:
    rows = service.search_entries(session=session, actor_id=actor_id, object_type=object_type, object_id=object_id,
                                  action=action, since=since, until=until, after_seq=after_seq, limit=limit)
    out = [AuditEntryOut.model_validate(r) for r in rows]
    service.record(session=session, clock=clock, actor=actor, action="audit.search", object_type="audit",
                   detail={"object_type": object_type, "object_id": object_id, "results": len(out)})
    return out


@router.get("/verify", response_model=ChainReportOut)
def verify(session: DbSession, actor: Actor = allow(*AUDITORS)) -> ChainReportOut:
    report = service.verify_chain(session=session)
    return ChainReportOut(ok=report.ok, entries=report.entries, problem=report.problem, seq=report.seq)
