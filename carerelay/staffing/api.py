"""Staffing routes: the charge nurse's board and assignments, units' shifts, conflicts, hand-overs,
feeds (SFTP files, assignment systems) and the push endpoint assignment systems call.

Nurses, system and integration administrators change assignments; which unit a nurse may change is
checked in the service (``check_may_manage``). Anyone signed in reads who is assigned where.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from sqlalchemy.orm import Session

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in, system_token
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.directory.models import Role
from carerelay.patients import service as patients
from carerelay.staffing import feeds, file_import, handover, service
from carerelay.staffing.models import StaffingFeed, StaffingFeedRun
from carerelay.staffing.roles import LABELS
from carerelay.staffing.schemas import (
    AssignmentIn,
    AssignmentOut,
    AssignmentsIn,
    BedOut,
    BoardOut,
    ChangeOut,
    ConflictOut,
    CopyOut,
    CopyShiftIn,
    EndIn,
    FeedActiveIn,
    FeedIn,
    FeedOut,
    FeedRunOut,
    HandoverOut,
    PushIn,
    ResolveIn,
    ShiftOut,
    TokenOut,
    UnitSettingsIn,
    UnitSettingsOut,
)
from carerelay.staffing.shifts import Shift, next_shift, shift_at
from carerelay.staffing.sync import engine as sync

router = APIRouter(prefix="/api/staffing", tags=["staffing"])

MANAGERS = (Role.NURSE, Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)
ADMINS = (Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)
BOARD_READERS = (Role.NURSE, Role.CLINICIAN, Role.OPERATOR, Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)


def _out(session: Session, rows: list[Any]) -> list[AssignmentOut]:
    return [AssignmentOut.model_validate(v.__dict__) for v in service.views(session, rows)]


def _change(session: Session, change: service.Change) -> ChangeOut:
    return ChangeOut(outcome=change.outcome, message=change.message,
                     assignment=_out(session, [change.assignment])[0] if change.assignment is not None else None,
                     ended=[r.id for r in change.ended], conflicts=[c.id for c in change.conflicts])


def _shift(shift: Shift) -> ShiftOut:
    return ShiftOut(label=shift.label, starts_at=shift.starts_at, ends_at=shift.ends_at)


def _settings_out(session: Session, clock: Clock, unit_code: str) -> UnitSettingsOut:
    settings = service.settings_of(session, service.get_unit(session, unit_code))
    now = clock.now()
    return UnitSettingsOut(unit=settings.code, timezone=settings.timezone,
                           shift_changes=[f"{t:%H:%M}" for t in settings.changes],
                           flag_minutes_before=settings.flag_minutes_before, precedence=list(settings.precedence),
                           configured=settings.configured, current_shift=_shift(shift_at(settings, now)),
                           next_shift=_shift(next_shift(settings, now)))


# -- reference ----------------------------------------------------------------------------------

@router.get("/roles", response_model=dict[str, str])
def care_roles(actor: Actor = signed_in()) -> dict[str, str]:
    """Care roles and how people say them; addresses also take nurse, tech, charge, RN, PCT…"""
    return {role.value: label for role, label in LABELS.items()}


# -- units --------------------------------------------------------------------------------------

@router.get("/units", response_model=list[UnitSettingsOut])
def units(session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> list[UnitSettingsOut]:
    return [_settings_out(session, clock, u.code) for u in patients.list_units(session=session)]


@router.get("/units/{unit}", response_model=UnitSettingsOut)
def unit_settings(unit: str, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> UnitSettingsOut:
    return _settings_out(session, clock, unit)


@router.put("/units/{unit}", response_model=UnitSettingsOut)
def configure_unit(unit: str, body: UnitSettingsIn, session: DbSession, clock: ClockDep,
                   actor: Actor = allow(*ADMINS)) -> UnitSettingsOut:
    service.configure_unit(session=session, clock=clock, actor=actor, unit=unit, shift_changes=body.shift_changes,
                           flag_minutes_before=body.flag_minutes_before,
                           precedence=[p.value for p in body.precedence] if body.precedence is not None else None)
    return _settings_out(session, clock, unit)


@router.get("/units/{unit}/board", response_model=BoardOut)
def board(unit: str, session: DbSession, clock: ClockDep, at: Annotated[datetime | None, Query()] = None,
          actor: Actor = allow(*BOARD_READERS)) -> BoardOut:
    found = service.board(session=session, clock=clock, actor=actor, unit=unit, at=at)
    beds = [BedOut(target=b.label, room=b.room, bed=b.bed, occupied=b.occupied,
                   primary_nurse_missing=b.primary_nurse_missing, assignments=_out(session, b.assignments))
            for b in found.beds]
    return BoardOut(unit=found.unit.code, unit_name=found.unit.name, timezone=found.settings.timezone, at=found.at,
                    shift=ShiftOut(label=found.shift_label, starts_at=found.shift_start, ends_at=found.shift_end),
                    charge_nurses=_out(session, [r for r in found.unit_level if r.care_role == "charge_nurse"]),
                    unit_level=_out(session, found.unit_level),
                    rooms={room: _out(session, rows) for room, rows in sorted(found.rooms.items())}, beds=beds,
                    unassigned_occupied=[b.label for b in found.beds if b.primary_nurse_missing],
                    open_conflicts=found.open_conflicts)


@router.post("/units/{unit}/copy-shift", response_model=CopyOut)
def copy_shift(unit: str, body: CopyShiftIn, session: DbSession, clock: ClockDep,
               actor: Actor = allow(*MANAGERS)) -> CopyOut:
    """Copy last shift's assignments into the next (or current) shift, as the charge nurse's own."""
    report = service.copy_shift(session=session, clock=clock, actor=actor, unit=unit, into=body.into,
                                source_shift=body.source_shift)
    tz = service.settings_of(session, service.get_unit(session, unit)).timezone
    return CopyOut(target_shift=_shift(Shift(report.target_start, report.target_end, tz)),
                   source_shift=_shift(Shift(report.source_start, report.source_end, tz)),
                   copied=_out(session, report.copied), skipped=report.skipped)


@router.get("/units/{unit}/handovers", response_model=list[HandoverOut])
def handovers(unit: str, session: DbSession, actor: Actor = signed_in()) -> list[HandoverOut]:
    found = service.get_unit(session, unit)
    return [HandoverOut.model_validate(h) for h in handover.list_handovers(session=session, unit_id=found.id)]


# -- assignments --------------------------------------------------------------------------------

@router.get("/assignments", response_model=list[AssignmentOut])
def list_assignments(
    session: DbSession, clock: ClockDep, unit: Annotated[str | None, Query(max_length=40)] = None,
    person_id: Annotated[int | None, Query()] = None, at: Annotated[datetime | None, Query()] = None,
    start: Annotated[datetime | None, Query()] = None, end: Annotated[datetime | None, Query()] = None,
    actor: Actor = signed_in(),
) -> list[AssignmentOut]:
    """In effect now (or ``at``), or overlapping ``start``–``end``."""
    when = at if at is not None or start is not None or end is not None else clock.now()
    return _out(session, service.list_assignments(session=session, unit=unit, person_id=person_id, at=when,
                                                  start=start, end=end))


@router.get("/me", response_model=list[AssignmentOut])
def my_assignments(session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> list[AssignmentOut]:
    if actor.person_id is None:
        return []
    now = clock.now()
    return _out(session, service.list_assignments(session=session, person_id=actor.person_id, start=now))


@router.post("/assignments", response_model=ChangeOut, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "the bed (or unit) is taken, or a more trusted source holds it"}})
def assign(body: AssignmentIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*MANAGERS)) -> ChangeOut:
    item = service.AssignmentIn(**body.model_dump(exclude={"replace"}))
    return _change(session, service.assign(session=session, clock=clock, actor=actor, item=item,
                                           replace=body.replace))


@router.post("/assignments/batch", response_model=list[ChangeOut], status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "an item conflicts; nothing was saved"}})
def assign_many(body: AssignmentsIn, session: DbSession, clock: ClockDep,
                actor: Actor = allow(*MANAGERS)) -> list[ChangeOut]:
    """A whole shift's board in one go: all items or none."""
    items = [service.AssignmentIn(**i.model_dump()) for i in body.assignments]
    return [_change(session, c) for c in service.assign_many(session=session, clock=clock, actor=actor, items=items,
                                                             replace=body.replace)]


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut)
def get_assignment(assignment_id: int, session: DbSession, actor: Actor = signed_in()) -> AssignmentOut:
    return _out(session, [service.get_assignment(session=session, assignment_id=assignment_id)])[0]


@router.post("/assignments/{assignment_id}/end", response_model=AssignmentOut)
def end_assignment(assignment_id: int, body: EndIn, session: DbSession, clock: ClockDep,
                   actor: Actor = allow(*MANAGERS)) -> AssignmentOut:
    row = service.end_assignment(session=session, clock=clock, actor=actor, assignment_id=assignment_id, at=body.at,
                                 reason=body.reason)
    return _out(session, [row])[0]


# -- conflicts ----------------------------------------------------------------------------------

@router.get("/conflicts", response_model=list[ConflictOut])
def conflicts(session: DbSession, unit: Annotated[str | None, Query(max_length=40)] = None,
              open_only: Annotated[bool, Query()] = True, actor: Actor = allow(*BOARD_READERS)) -> list[ConflictOut]:
    return [ConflictOut.model_validate(c)
            for c in service.list_conflicts(session=session, unit=unit, open_only=open_only)]


@router.post("/conflicts/{conflict_id}/resolve", response_model=ConflictOut)
def resolve_conflict(conflict_id: int, body: ResolveIn, session: DbSession, clock: ClockDep,
                     actor: Actor = allow(*MANAGERS)) -> ConflictOut:
    return ConflictOut.model_validate(service.resolve_conflict(session=session, clock=clock, actor=actor,
                                                               conflict_id=conflict_id, note=body.note))


# -- feeds --------------------------------------------------------------------------------------

def _feed_out(feed: StaffingFeed) -> FeedOut:
    return FeedOut.model_validate({**{c: getattr(feed, c) for c in FeedOut.model_fields if c != "has_token"},
                                   "has_token": feed.token_hash is not None})


@router.get("/feeds", response_model=list[FeedOut])
def list_feeds(session: DbSession, actor: Actor = allow(*ADMINS)) -> list[FeedOut]:
    return [_feed_out(f) for f in feeds.list_feeds(session=session)]


@router.post("/feeds", response_model=FeedOut, status_code=status.HTTP_201_CREATED)
def create_feed(body: FeedIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> FeedOut:
    return _feed_out(feeds.create_feed(session=session, clock=clock, actor=actor, **body.model_dump()))


@router.get("/feeds/{feed_id}", response_model=FeedOut)
def get_feed(feed_id: int, session: DbSession, actor: Actor = allow(*ADMINS)) -> FeedOut:
    return _feed_out(feeds.get_feed(session=session, feed_id=feed_id))


@router.post("/feeds/{feed_id}/active", response_model=FeedOut)
def set_active(feed_id: int, body: FeedActiveIn, session: DbSession, clock: ClockDep,
               actor: Actor = allow(*ADMINS)) -> FeedOut:
    return _feed_out(feeds.set_active(session=session, clock=clock, actor=actor, feed_id=feed_id, active=body.active))


@router.post("/feeds/{feed_id}/token", response_model=TokenOut, status_code=status.HTTP_201_CREATED)
def issue_token(feed_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> TokenOut:
    return TokenOut(token=feeds.issue_token(session=session, clock=clock, actor=actor, feed_id=feed_id))


@router.post("/feeds/{feed_id}/run", response_model=FeedOut, status_code=status.HTTP_202_ACCEPTED)
def run_soon(feed_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> FeedOut:
    """Due now: the next pass of the feed runner (within seconds) fetches it. The fetch never runs
    inside a request, so a slow SFTP server cannot hold the database."""
    return _feed_out(feeds.mark_due(session=session, clock=clock, actor=actor, feed_id=feed_id))


@router.get("/feeds/{feed_id}/runs", response_model=list[FeedRunOut])
def runs(feed_id: int, session: DbSession, actor: Actor = allow(*ADMINS)) -> list[FeedRunOut]:
    return [FeedRunOut.model_validate(r) for r in feeds.list_runs(session=session, feed_id=feed_id)]


def _run_response(run: StaffingFeedRun) -> FeedRunOut | Response:
    out = FeedRunOut.model_validate(run)
    if run.status in ("rejected", "failed"):
        return Response(content=out.model_dump_json(), status_code=422, media_type="application/json")
    return out


@router.post("/feeds/{feed_id}/files", response_model=FeedRunOut,
             responses={422: {"model": FeedRunOut, "description": "the file was refused; nothing applied"}})
def upload_file(
    feed_id: int, session: DbSession, clock: ClockDep,
    content: Annotated[bytes, Body(media_type="text/csv", max_length=file_import.MAX_BYTES)],
    name: Annotated[str, Query(min_length=1, max_length=200)] = "upload.csv", actor: Actor = allow(*ADMINS),
) -> FeedRunOut | Response:
    """Import a file by hand through a feed's column map (what the SFTP pull does with each file)."""
    feed = feeds.get_feed(session=session, feed_id=feed_id)
    feeds.check_feed_admin(actor)
    report = file_import.import_file(session=session, clock=clock, feed=feed, name=name, content=content,
                                     trigger=f"upload:{actor.username}")
    return _run_response(report.run)


def _push_feed(session: Session, token: str) -> StaffingFeed:
    return feeds.authenticate_push(session=session, token=token)


@router.post("/push", response_model=FeedRunOut,
             responses={422: {"model": FeedRunOut, "description": "refused items; nothing applied"}})
def push(body: PushIn, session: DbSession, clock: ClockDep,
         feed: StaffingFeed = system_token("staffing feed", _push_feed)) -> FeedRunOut | Response:
    """An assignment system sends changes: the poll's assignment objects, each with an action."""
    return _run_response(sync.push(session=session, clock=clock, feed=feed, payload=body.changes).run)
