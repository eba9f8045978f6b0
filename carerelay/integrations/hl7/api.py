"""HL7 monitor routes for integration admins: search, read, reprocess, purge, feed health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request

from carerelay.audit.service import record
from carerelay.auth.deps import ClockDep, DbSession, SettingsDep, allow
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.integrations.hl7 import store
from carerelay.integrations.hl7.feeds import feeds_from
from carerelay.integrations.hl7.parser import decode
from carerelay.integrations.hl7.schemas import (
    FeedOut,
    HandoffOut,
    MessageDetailOut,
    MessageOut,
    PurgeIn,
    PurgeOut,
    ReprocessIn,
    ReprocessOut,
)
from carerelay.patients import service as patients

router = APIRouter(prefix="/api/hl7", tags=["hl7"])

ADMINS = (Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)


@router.get("/messages", response_model=list[MessageOut])
def search(
    session: DbSession,
    clock: ClockDep,
    message_type: Annotated[str | None, Query(max_length=30, description="ADT, ADT^A01, ORU^R01…")] = None,
    mrn: Annotated[str | None, Query(max_length=80)] = None,
    control_id: Annotated[str | None, Query(max_length=199)] = None,
    status: Annotated[str | None, Query(pattern="^(received|processed|filtered|error)$")] = None,
    feed: Annotated[str | None, Query(max_length=60)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: Actor = allow(*ADMINS),
) -> list[MessageOut]:
    query = store.MessageQuery(message_type=message_type, mrn=mrn, control_id=control_id, status=status, feed=feed,
                               since=since, until=until)
    rows = store.search_messages(session=session, clock=clock, actor=actor, query=query, before_id=before_id,
                                 limit=limit)
    return [MessageOut.model_validate(r) for r in rows]


@router.get("/messages/{message_id}", response_model=MessageDetailOut)
def read(message_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> MessageDetailOut:
    row = store.access_message(session=session, clock=clock, actor=actor, message_id=message_id)
    text, _, _ = decode(row.raw, row.charset or "utf-8")
    return MessageDetailOut.model_validate({**MessageOut.model_validate(row).model_dump(), "text": text})


@router.post("/messages/reprocess", response_model=ReprocessOut)
def reprocess(body: ReprocessIn, request: Request, background: BackgroundTasks, session: DbSession,
              clock: ClockDep, actor: Actor = allow(*ADMINS)) -> ReprocessOut:
    """By ``ids``, or every message matching the filter (default status: error). Processed in arrival order."""
    query = None if body.ids else store.MessageQuery(status=body.status, message_type=body.message_type,
                                                     feed=body.feed, since=body.since, until=body.until)
    ids = store.reprocess_messages(session=session, clock=clock, actor=actor, ids=body.ids, query=query)
    runtime = getattr(request.app.state, "hl7", None)
    if runtime is not None:  # after the response, so after the commit (the processor also polls)
        background.add_task(runtime.wake)
    return ReprocessOut(ids=ids, count=len(ids))


@router.post("/messages/purge", response_model=PurgeOut)
def purge(body: PurgeIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> PurgeOut:
    deleted = store.purge_messages(session=session, clock=clock, actor=actor, older_than_days=body.older_than_days)
    return PurgeOut(deleted=deleted)


@router.get("/feeds", response_model=list[FeedOut])
def feeds(session: DbSession, clock: ClockDep, settings: SettingsDep, request: Request,
          actor: Actor = allow(*ADMINS)) -> list[FeedOut]:
    """Each feed with when it last spoke and ``silent_since`` when it is past its silence threshold."""
    runtime = getattr(request.app.state, "hl7", None)
    configured = runtime.feeds if runtime is not None else feeds_from(settings)
    ports = runtime.ports if runtime is not None else {}
    health = {h.feed: h for h in store.check_feeds(session=session, clock=clock, feeds=configured)}
    counts = store.message_counts(session=session)
    return [FeedOut(name=f.name, port=ports.get(f.name, f.port), listening=f.name in ports, ack_mode=f.ack_mode,
                    charset=f.charset, message_types=list(f.message_types), silence_minutes=f.silence_minutes,
                    last_message_at=health[f.name].last_message_at, silent_since=health[f.name].silent_since,
                    counts=counts.get(f.name, {})) for f in configured]


@router.get("/handoffs", response_model=list[HandoffOut])
def handoffs(session: DbSession, clock: ClockDep,
             kind: Annotated[str | None,
                             Query(pattern="^(critical_result|stat_order|consult_order|presenting_patient)$")] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100, actor: Actor = allow(*ADMINS)) -> list[HandoffOut]:
    """Hand-offs waiting for the alerts domain (not claimed yet): critical results, STAT and consult
    orders, presenting-patient matches, each with its target."""
    rows = [HandoffOut.model_validate(h) for h in patients.pending_handoffs(session=session, kind=kind, limit=limit)]
    record(session=session, clock=clock, actor=actor, action="patient.handoffs.read", object_type="clinical_handoff",
           detail={"kind": kind, "results": len(rows)})
    return rows
