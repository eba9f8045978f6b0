"""Scheduling routes: thin adapters over scheduling.service, lookup, csv_import and ical.

Schedulers (and system administrators) edit; anyone signed in reads published data. Which
department a scheduler may edit is checked in the service (``check_may_edit``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import httpx2
from fastapi import APIRouter, Body, Query, Response, status

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.core.errors import Invalid
from carerelay.directory.models import Role
from carerelay.scheduling import csv_import, ical, lookup, service
from carerelay.scheduling.models import RequestStatus
from carerelay.scheduling.schemas import (
    AssignmentIn,
    AssignmentMapIn,
    AssignmentOut,
    AssignmentPatch,
    ChangeOut,
    CoverageOut,
    CrossCredentialIn,
    CrossCredentialOut,
    DecisionIn,
    ImportErrorOut,
    ImportOut,
    OnCallOut,
    PersonMapIn,
    ScheduleIn,
    ScheduleOut,
    SlotIn,
    SlotOut,
    SlotWho,
    SwapIn,
    SwapOut,
    SyncRunOut,
    SyncSourceIn,
    SyncSourceOut,
    TimeOffIn,
    TimeOffOut,
    VersionOut,
)
from carerelay.scheduling.sync import engine as sync

router = APIRouter(prefix="/api/scheduling", tags=["scheduling"])

EDITORS = (Role.SCHEDULER, Role.SYSTEM_ADMIN)
SYNC_ADMINS = (Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)
CALENDAR = "text/calendar; charset=utf-8"


def _who(body: SlotWho) -> service.SlotFields:
    return service.SlotFields(person_id=body.person_id, placeholder_name=body.placeholder_name,
                              placeholder_contact=body.placeholder_contact, notes=body.notes)


# -- assignments --------------------------------------------------------------------------------

@router.get("/assignments", response_model=list[AssignmentOut])
def list_assignments(
    session: DbSession, department_id: Annotated[int | None, Query()] = None, actor: Actor = signed_in()
) -> list[AssignmentOut]:
    return [AssignmentOut.model_validate(a)
            for a in service.list_assignments(session=session, department_id=department_id)]


@router.post("/assignments", response_model=AssignmentOut, status_code=status.HTTP_201_CREATED)
def create_assignment(
    body: AssignmentIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> AssignmentOut:
    assignment = service.create_assignment(session=session, clock=clock, actor=actor, **body.model_dump())
    return AssignmentOut.model_validate(assignment)


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut)
def get_assignment(assignment_id: int, session: DbSession, actor: Actor = signed_in()) -> AssignmentOut:
    return AssignmentOut.model_validate(service.get_assignment(session=session, assignment_id=assignment_id))


@router.patch("/assignments/{assignment_id}", response_model=AssignmentOut)
def update_assignment(
    assignment_id: int, body: AssignmentPatch, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> AssignmentOut:
    changes = body.model_dump(exclude_unset=True)
    for key in ("name", "call_order", "allow_overlap", "mapping", "active", "start_time", "end_time"):
        if key in changes and changes[key] is None:
            raise Invalid(f"{key} cannot be null", field=key)
    assignment = service.update_assignment(session=session, clock=clock, actor=actor, assignment_id=assignment_id,
                                           changes=changes)
    return AssignmentOut.model_validate(assignment)


@router.get("/assignments/{assignment_id}/calendar.ics", response_class=Response,
            responses={200: {"content": {"text/calendar": {}}}})
def assignment_calendar(assignment_id: int, session: DbSession, clock: ClockDep,
                        actor: Actor = signed_in()) -> Response:
    body = ical.assignment_feed(session=session, now=clock.now(), assignment_id=assignment_id)
    return Response(content=body, media_type=CALENDAR)


@router.get("/people/{person_id}/calendar.ics", response_class=Response,
            responses={200: {"content": {"text/calendar": {}}}})
def person_calendar(person_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    body = ical.person_feed(session=session, now=clock.now(), person_id=person_id)
    return Response(content=body, media_type=CALENDAR)


# -- cross-credentials --------------------------------------------------------------------------

@router.get("/cross-credentials", response_model=list[CrossCredentialOut])
def list_cross_credentials(
    session: DbSession, department_id: Annotated[int | None, Query()] = None, actor: Actor = signed_in()
) -> list[CrossCredentialOut]:
    return [CrossCredentialOut.model_validate(c)
            for c in service.list_cross_credentials(session=session, department_id=department_id)]


@router.post("/cross-credentials", response_model=CrossCredentialOut, status_code=status.HTTP_201_CREATED)
def grant_cross_credential(
    body: CrossCredentialIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> CrossCredentialOut:
    grant = service.grant_cross_credential(session=session, clock=clock, actor=actor, **body.model_dump())
    return CrossCredentialOut.model_validate(grant)


@router.delete("/cross-credentials/{department_id}/{person_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_cross_credential(
    department_id: int, person_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> Response:
    service.revoke_cross_credential(session=session, clock=clock, actor=actor, person_id=person_id,
                                    department_id=department_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- schedules ----------------------------------------------------------------------------------

@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(
    session: DbSession, department_id: Annotated[int | None, Query()] = None, actor: Actor = signed_in()
) -> list[ScheduleOut]:
    return [ScheduleOut.model_validate(s)
            for s in service.list_schedules(session=session, actor=actor, department_id=department_id)]


@router.post("/schedules", response_model=ScheduleOut, status_code=status.HTTP_201_CREATED)
def create_schedule(
    body: ScheduleIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> ScheduleOut:
    schedule = service.create_schedule(session=session, clock=clock, actor=actor, **body.model_dump())
    return ScheduleOut.model_validate(schedule)


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut)
def get_schedule(schedule_id: int, session: DbSession, actor: Actor = signed_in()) -> ScheduleOut:
    return ScheduleOut.model_validate(service.access_schedule(session=session, actor=actor, schedule_id=schedule_id))


@router.post("/schedules/{schedule_id}/publish", response_model=VersionOut)
def publish_schedule(
    schedule_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> VersionOut:
    version = service.publish_schedule(session=session, clock=clock, actor=actor, schedule_id=schedule_id)
    return VersionOut.model_validate(version)


@router.post("/schedules/{schedule_id}/unpublish", response_model=ScheduleOut)
def unpublish_schedule(
    schedule_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> ScheduleOut:
    schedule = service.unpublish_schedule(session=session, clock=clock, actor=actor, schedule_id=schedule_id)
    return ScheduleOut.model_validate(schedule)


@router.get("/schedules/{schedule_id}/versions", response_model=list[VersionOut])
def list_versions(schedule_id: int, session: DbSession, actor: Actor = signed_in()) -> list[VersionOut]:
    service.access_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return [VersionOut.model_validate(v) for v in service.list_versions(session=session, schedule_id=schedule_id)]


@router.get("/schedules/{schedule_id}/changes", response_model=list[ChangeOut])
def list_changes(
    schedule_id: int, session: DbSession, since_version: Annotated[int, Query(ge=0)] = 0, actor: Actor = signed_in()
) -> list[ChangeOut]:
    service.access_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return [ChangeOut.model_validate(c)
            for c in service.list_changes(session=session, schedule_id=schedule_id, since_version=since_version)]


@router.get("/schedules/{schedule_id}/slots", response_model=list[SlotOut])
def list_slots(schedule_id: int, session: DbSession, actor: Actor = signed_in()) -> list[SlotOut]:
    service.access_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return [SlotOut.model_validate(s) for s in service.list_slots(session=session, schedule_id=schedule_id)]


@router.post("/schedules/{schedule_id}/slots", response_model=SlotOut, status_code=status.HTTP_201_CREATED)
def add_slot(
    schedule_id: int, body: SlotIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> SlotOut:
    slot = service.add_slot(session=session, clock=clock, actor=actor, schedule_id=schedule_id,
                            assignment_id=body.assignment_id, on_date=body.on_date, fields=_who(body))
    return SlotOut.model_validate(slot)


@router.post("/schedules/{schedule_id}/import", response_model=ImportOut,
             responses={422: {"model": ImportOut, "description": "the file had errors; nothing imported"}})
def import_csv(
    schedule_id: int, session: DbSession, clock: ClockDep,
    text: Annotated[str, Body(media_type="text/csv", max_length=5_000_000)],
    partial: Annotated[bool, Query(description="import the good rows even when some rows fail")] = False,
    actor: Actor = allow(*EDITORS),
) -> ImportOut | Response:
    report = csv_import.import_slots_csv(session=session, clock=clock, actor=actor, schedule_id=schedule_id,
                                         text=text, partial=partial)
    out = ImportOut(imported=report.imported, rows=report.rows,
                    errors=[ImportErrorOut(row=e.row, field=e.field, message=e.message) for e in report.errors])
    if report.errors and not partial:
        return Response(content=out.model_dump_json(), status_code=422, media_type="application/json")
    return out


# -- slots --------------------------------------------------------------------------------------

@router.patch("/slots/{slot_id}", response_model=SlotOut)
def update_slot(
    slot_id: int, body: SlotWho, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> SlotOut:
    slot = service.update_slot(session=session, clock=clock, actor=actor, slot_id=slot_id, fields=_who(body))
    return SlotOut.model_validate(slot)


@router.delete("/slots/{slot_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_slot(slot_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)) -> Response:
    service.remove_slot(session=session, clock=clock, actor=actor, slot_id=slot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- swaps and time off -------------------------------------------------------------------------

@router.get("/swaps", response_model=list[SwapOut])
def list_swaps(
    session: DbSession, status_filter: Annotated[RequestStatus | None, Query(alias="status")] = None,
    actor: Actor = signed_in(),
) -> list[SwapOut]:
    return [SwapOut.model_validate(s) for s in service.list_swaps(session=session, actor=actor, status=status_filter)]


@router.post("/swaps", response_model=SwapOut, status_code=status.HTTP_201_CREATED)
def request_swap(body: SwapIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> SwapOut:
    swap = service.request_swap(session=session, clock=clock, actor=actor, **body.model_dump())
    return SwapOut.model_validate(swap)


@router.post("/swaps/{swap_id}/decision", response_model=SwapOut)
def decide_swap(
    swap_id: int, body: DecisionIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> SwapOut:
    swap = service.decide_swap(session=session, clock=clock, actor=actor, swap_id=swap_id, approve=body.approve)
    return SwapOut.model_validate(swap)


@router.get("/time-off", response_model=list[TimeOffOut])
def list_time_off(
    session: DbSession, person_id: Annotated[int | None, Query()] = None, actor: Actor = signed_in()
) -> list[TimeOffOut]:
    rows = service.list_time_off(session=session, actor=actor, person_id=person_id)
    return [TimeOffOut.model_validate(t) for t in rows]


@router.post("/time-off", response_model=TimeOffOut, status_code=status.HTTP_201_CREATED)
def request_time_off(body: TimeOffIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> TimeOffOut:
    request = service.request_time_off(session=session, clock=clock, actor=actor, **body.model_dump())
    return TimeOffOut.model_validate(request)


@router.post("/time-off/{request_id}/decision", response_model=TimeOffOut)
def decide_time_off(
    request_id: int, body: DecisionIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)
) -> TimeOffOut:
    request = service.decide_time_off(session=session, clock=clock, actor=actor, request_id=request_id,
                                      approve=body.approve)
    return TimeOffOut.model_validate(request)


# -- on call ------------------------------------------------------------------------------------

@router.get("/on-call", response_model=list[OnCallOut])
def who_is_on(
    session: DbSession, clock: ClockDep,
    assignment_id: Annotated[int | None, Query()] = None,
    department_id: Annotated[int | None, Query()] = None,
    at: Annotated[datetime | None, Query(description="An instant with its offset, e.g. 2026-11-24T13:00:00Z; "
                                                      "default now")] = None,
    actor: Actor = signed_in(),
) -> list[OnCallOut]:
    found = lookup.who_is_on(session=session, at=at or clock.now(), assignment_id=assignment_id,
                             department_id=department_id)
    return [OnCallOut.model_validate(o) for o in found]


@router.get("/on-call/now", response_model=list[CoverageOut])
def on_call_now(session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> list[CoverageOut]:
    return [CoverageOut.model_validate(c) for c in lookup.on_call_now(session=session, at=clock.now())]


# -- third-party scheduler sync -----------------------------------------------------------------

@router.get("/sync/sources", response_model=list[SyncSourceOut])
def list_sync_sources(session: DbSession, actor: Actor = allow(*SYNC_ADMINS)) -> list[SyncSourceOut]:
    return [SyncSourceOut.model_validate(s) for s in sync.list_sources(session=session)]


@router.post("/sync/sources", response_model=SyncSourceOut, status_code=status.HTTP_201_CREATED)
def create_sync_source(
    body: SyncSourceIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*SYNC_ADMINS)
) -> SyncSourceOut:
    source = sync.create_source(session=session, clock=clock, actor=actor, **body.model_dump())
    return SyncSourceOut.model_validate(source)


@router.put("/sync/sources/{source_id}/people/{external_id}", status_code=status.HTTP_204_NO_CONTENT)
def map_sync_person(
    source_id: int, external_id: str, body: PersonMapIn, session: DbSession, clock: ClockDep,
    actor: Actor = allow(*SYNC_ADMINS),
) -> Response:
    sync.map_person(session=session, clock=clock, actor=actor, source_id=source_id, external_id=external_id,
                    person_id=body.person_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/sync/sources/{source_id}/assignments/{external_id}", status_code=status.HTTP_204_NO_CONTENT)
def map_sync_assignment(
    source_id: int, external_id: str, body: AssignmentMapIn, session: DbSession, clock: ClockDep,
    actor: Actor = allow(*SYNC_ADMINS),
) -> Response:
    sync.map_assignment(session=session, clock=clock, actor=actor, source_id=source_id, external_id=external_id,
                        assignment_id=body.assignment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/sync/sources/{source_id}/run", response_model=SyncRunOut)
def run_sync(source_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*SYNC_ADMINS)) -> SyncRunOut:
    with httpx2.Client(timeout=20) as http:
        run = sync.run_sync(session=session, clock=clock, source_id=source_id, http=http)
    return SyncRunOut.model_validate(run)


@router.get("/sync/sources/{source_id}/runs", response_model=list[SyncRunOut])
def list_sync_runs(source_id: int, session: DbSession, actor: Actor = allow(*SYNC_ADMINS)) -> list[SyncRunOut]:
    return [SyncRunOut.model_validate(r) for r in sync.list_runs(session=session, source_id=source_id)]
