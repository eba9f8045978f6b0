"""Scheduling logic: assignments, cross-credentials, schedules, slots, swaps and time off.

Every change is audited. A change to a schedule that is already published also goes to the
schedule's change log (who, when, before/after) so delta export files can be built from it.
Edits to a published schedule are live at once (routing must follow a swap within minutes);
publishing again cuts a new version with a snapshot of every slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.core.errors import Conflict, Forbidden, Invalid, NotFound
from carerelay.directory.models import Department, Person, Role
from carerelay.scheduling.models import (
    MAX_SLOT_HOURS,
    Assignment,
    AssignmentKind,
    CrossCredential,
    LookupVersion,
    RequestStatus,
    Schedule,
    ScheduleChange,
    ScheduleStatus,
    ScheduleVersion,
    Slot,
    SlotSource,
    SwapRequest,
    TimeOffRequest,
)
from carerelay.scheduling.timeline import slot_span

MAX_SCHEDULE_DAYS = 400
"""A schedule longer than a year and a bit is almost certainly a typo in a date."""


# -- who may edit -------------------------------------------------------------------------------

def check_may_edit(*, session: Session, actor: Actor, department_id: int) -> None:
    """System administrators and the CLI edit any department; a scheduler edits their home department.

    Schedules decide who gets paged, so a scheduler of one department must not rewrite another's.
    """
    if actor.has_any(Role.SYSTEM_ADMIN.value, "system"):
        return
    if actor.has_any(Role.SCHEDULER.value) and actor.person_id is not None:
        person = session.get(Person, actor.person_id)
        if person is not None and person.department_id == department_id:
            return
    raise Forbidden("you may only edit schedules of your own department")


def lock_for_writing(session: Session) -> None:
    """Take the lookup-version row first (PostgreSQL), before any person or department lock.

    Every slot, schedule or assignment write updates that row (a trigger), so a scheduling
    transaction holds it from its first write to its commit; taking it before the row locks below
    keeps one lock order for all of them, so two concurrent edits wait instead of deadlocking.
    """
    session.execute(select(LookupVersion.id).where(LookupVersion.id == 1).with_for_update())


def is_editor(actor: Actor) -> bool:
    return actor.has_any(Role.SYSTEM_ADMIN.value, Role.SCHEDULER.value, "system")


# -- assignments --------------------------------------------------------------------------------

def _department(session: Session, department_id: int, field: str = "department_id") -> Department:
    dept = session.get(Department, department_id)
    if dept is None:
        raise Invalid(f"no department {department_id}", field=field)
    return dept


def create_assignment(
    *, session: Session, clock: Clock, actor: Actor, department_id: int, code: str, name: str, kind: str,
    start_time: time, end_time: time, call_order: int = 1, allow_overlap: bool = False,
    mapping: dict[str, Any] | None = None,
) -> Assignment:
    _department(session, department_id)
    check_may_edit(session=session, actor=actor, department_id=department_id)
    if kind not in {k.value for k in AssignmentKind}:
        raise Invalid(f"kind must be one of {', '.join(k.value for k in AssignmentKind)}", field="kind")
    if session.execute(select(Assignment.id).where(Assignment.code == code)).first():
        raise Conflict(f"an assignment with code {code!r} already exists", field="code")
    now = clock.now()
    assignment = Assignment(department_id=department_id, code=code, name=name, kind=kind,
                            start_time=start_time.replace(second=0, microsecond=0),
                            end_time=end_time.replace(second=0, microsecond=0), call_order=call_order,
                            allow_overlap=allow_overlap, mapping=dict(mapping or {}), active=True,
                            created_at=now, updated_at=now)
    session.add(assignment)
    flush_or_conflict(session, f"an assignment with code {code!r} already exists")
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.create_assignment",
                 object_type="assignment", object_id=assignment.id,
                 detail={"code": code, "department_id": department_id, "start": start_time.isoformat(),
                         "end": end_time.isoformat(), "kind": kind, "call_order": call_order})
    return assignment


def get_assignment(*, session: Session, assignment_id: int) -> Assignment:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}")
    return assignment


def find_assignment(*, session: Session, code: str) -> Assignment | None:
    return session.execute(select(Assignment).where(Assignment.code == code)).scalar_one_or_none()


def list_assignments(*, session: Session, department_id: int | None = None) -> list[Assignment]:
    query = select(Assignment).order_by(Assignment.department_id, Assignment.call_order, Assignment.code)
    if department_id is not None:
        query = query.where(Assignment.department_id == department_id)
    return list(session.execute(query).scalars())


TIME_FIELDS = ("start_time", "end_time")


def update_assignment(
    *, session: Session, clock: Clock, actor: Actor, assignment_id: int, changes: dict[str, Any]
) -> Assignment:
    """Times cannot change once slots use the template: their UTC spans were computed from them."""
    assignment = get_assignment(session=session, assignment_id=assignment_id)
    check_may_edit(session=session, actor=actor, department_id=assignment.department_id)
    for field in TIME_FIELDS:
        if field in changes and changes[field] != getattr(assignment, field):
            used = session.execute(select(Slot.id).where(Slot.assignment_id == assignment_id).limit(1)).first()
            if used:
                raise Conflict(f"{field}: slots already use this assignment; create a new assignment "
                               "for the new hours", field=field)
    before = {k: _plain(getattr(assignment, k)) for k in changes}
    for key, value in changes.items():
        setattr(assignment, key, value)
    assignment.updated_at = clock.now()
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.update_assignment",
                 object_type="assignment", object_id=assignment_id,
                 detail={"before": before, "after": {k: _plain(v) for k, v in changes.items()}})
    return assignment


def set_assignment_mapping(
    *, session: Session, clock: Clock, actor: Actor, assignment_id: int, key: str, fields: dict[str, Any] | None
) -> Assignment:
    """Set (or with ``None`` remove) one export's fields in an assignment's mapping.

    Export mappings are integration settings, so integration administrators may set them as well as
    the department's schedulers; the rest of the assignment stays theirs.
    """
    assignment = get_assignment(session=session, assignment_id=assignment_id)
    if not actor.has_any(Role.INTEGRATION_ADMIN.value):
        check_may_edit(session=session, actor=actor, department_id=assignment.department_id)
    before = assignment.mapping.get(key)
    mapping = dict(assignment.mapping)
    if fields is None:
        mapping.pop(key, None)
    else:
        mapping[key] = fields
    assignment.mapping = mapping
    assignment.updated_at = clock.now()
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.set_assignment_mapping",
                 object_type="assignment", object_id=assignment_id,
                 detail={"key": key, "before": before, "after": fields})
    return assignment


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | time | datetime) else value


# -- cross-credentials --------------------------------------------------------------------------

def grant_cross_credential(
    *, session: Session, clock: Clock, actor: Actor, person_id: int, department_id: int, note: str | None = None
) -> CrossCredential:
    _department(session, department_id)
    check_may_edit(session=session, actor=actor, department_id=department_id)
    if session.get(Person, person_id) is None:
        raise Invalid(f"no person {person_id}", field="person_id")
    if session.get(CrossCredential, (person_id, department_id)) is not None:
        raise Conflict(f"person {person_id} is already cross-credentialed to department {department_id}",
                       field="person_id")
    grant = CrossCredential(person_id=person_id, department_id=department_id, granted_at=clock.now(),
                            granted_by=actor.username, note=note)
    session.add(grant)
    flush_or_conflict(session, "already cross-credentialed")
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.grant_cross_credential",
                 object_type="person", object_id=person_id, detail={"department_id": department_id})
    return grant


def revoke_cross_credential(
    *, session: Session, clock: Clock, actor: Actor, person_id: int, department_id: int
) -> None:
    grant = session.get(CrossCredential, (person_id, department_id))
    if grant is None:
        raise NotFound(f"person {person_id} is not cross-credentialed to department {department_id}")
    check_may_edit(session=session, actor=actor, department_id=department_id)
    session.delete(grant)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.revoke_cross_credential",
                 object_type="person", object_id=person_id, detail={"department_id": department_id})


def list_cross_credentials(*, session: Session, department_id: int | None = None) -> list[CrossCredential]:
    query = select(CrossCredential).order_by(CrossCredential.department_id, CrossCredential.person_id)
    if department_id is not None:
        query = query.where(CrossCredential.department_id == department_id)
    return list(session.execute(query).scalars())


# -- schedules ----------------------------------------------------------------------------------

def create_schedule(
    *, session: Session, clock: Clock, actor: Actor, department_id: int, starts_on: date, ends_on: date,
    name: str | None = None,
) -> Schedule:
    dept = _department(session, department_id)
    check_may_edit(session=session, actor=actor, department_id=department_id)
    if ends_on < starts_on:
        raise Invalid(f"ends_on {ends_on} is before starts_on {starts_on}", field="ends_on")
    if (ends_on - starts_on).days >= MAX_SCHEDULE_DAYS:
        raise Invalid(f"a schedule covers at most {MAX_SCHEDULE_DAYS} days", field="ends_on")
    # Lock the department so two concurrent creations cannot both pass the overlap check.
    lock_for_writing(session)
    session.execute(select(Department.id).where(Department.id == department_id).with_for_update())
    overlapping = session.execute(
        select(Schedule).where(Schedule.department_id == department_id, Schedule.starts_on <= ends_on,
                               Schedule.ends_on >= starts_on)
    ).scalars().first()
    if overlapping is not None:
        raise Conflict(f"schedule {overlapping.id} of {dept.code} already covers "
                       f"{overlapping.starts_on}..{overlapping.ends_on}", field="starts_on")
    now = clock.now()
    schedule = Schedule(department_id=department_id, name=name or f"{dept.name} {starts_on:%Y-%m-%d}",
                        starts_on=starts_on, ends_on=ends_on, status=ScheduleStatus.DRAFT.value, version=0,
                        created_at=now, updated_at=now)
    session.add(schedule)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.create_schedule",
                 object_type="schedule", object_id=schedule.id,
                 detail={"department_id": department_id, "starts_on": starts_on.isoformat(),
                         "ends_on": ends_on.isoformat()})
    return schedule


def get_schedule(*, session: Session, schedule_id: int) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"no schedule {schedule_id}")
    return schedule


def access_schedule(*, session: Session, actor: Actor, schedule_id: int) -> Schedule:
    """Drafts are the schedulers' working copy; everyone else sees published schedules only."""
    schedule = get_schedule(session=session, schedule_id=schedule_id)
    if schedule.status != ScheduleStatus.PUBLISHED and not is_editor(actor):
        raise NotFound(f"no schedule {schedule_id}")
    return schedule


def list_schedules(
    *, session: Session, actor: Actor, department_id: int | None = None
) -> list[Schedule]:
    query = select(Schedule).order_by(Schedule.department_id, Schedule.starts_on)
    if department_id is not None:
        query = query.where(Schedule.department_id == department_id)
    if not is_editor(actor):
        query = query.where(Schedule.status == ScheduleStatus.PUBLISHED.value)
    return list(session.execute(query).scalars())


def find_schedule(*, session: Session, department_id: int, on_date: date) -> Schedule | None:
    return session.execute(
        select(Schedule).where(Schedule.department_id == department_id, Schedule.starts_on <= on_date,
                               Schedule.ends_on >= on_date)
    ).scalars().first()


def publish_schedule(*, session: Session, clock: Clock, actor: Actor, schedule_id: int) -> ScheduleVersion:
    schedule = get_schedule(session=session, schedule_id=schedule_id)
    check_may_edit(session=session, actor=actor, department_id=schedule.department_id)
    now = clock.now()
    schedule.version += 1
    schedule.status = ScheduleStatus.PUBLISHED.value
    schedule.published_at = now
    schedule.updated_at = now
    snapshot = [slot_snapshot(s) for s in list_slots(session=session, schedule_id=schedule_id)]
    version = ScheduleVersion(schedule_id=schedule_id, version=schedule.version, published_at=now,
                              published_by=actor.username, published_by_id=actor.person_id, slots=snapshot)
    session.add(version)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.publish_schedule",
                 object_type="schedule", object_id=schedule_id,
                 detail={"version": schedule.version, "slots": len(snapshot)})
    return version


def unpublish_schedule(*, session: Session, clock: Clock, actor: Actor, schedule_id: int) -> Schedule:
    """Withdraw a published schedule (published by mistake): it stops counting for lookup and exports.

    The withdrawal goes to the change log (``schedule.unpublish``) so delta exports remove what they
    sent; the versions stay. Publishing again cuts a new version.
    """
    schedule = get_schedule(session=session, schedule_id=schedule_id)
    check_may_edit(session=session, actor=actor, department_id=schedule.department_id)
    if schedule.status != ScheduleStatus.PUBLISHED:
        raise Conflict(f"schedule {schedule_id} is not published", field="status")
    now = clock.now()
    session.add(ScheduleChange(schedule_id=schedule.id, after_version=schedule.version, at=now,
                               actor_id=actor.person_id, actor_name=actor.username, action="schedule.unpublish",
                               slot_id=None, before={"status": schedule.status}, after={"status": "draft"}))
    schedule.status = ScheduleStatus.DRAFT.value
    schedule.updated_at = now
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.unpublish_schedule",
                 object_type="schedule", object_id=schedule_id, detail={"version": schedule.version})
    return schedule


def change_watermark(*, session: Session, department_ids: Sequence[int] | None = None) -> tuple[int, int, int]:
    """(last change id, last version id, last withdrawal id) of schedules in scope.

    It moves whenever what exports read moves. Connectors compare it with the one they saw last
    instead of hooking into every write, so a change made by any node, the CLI or a vendor sync is
    noticed the same way.
    """
    changes = select(func.max(ScheduleChange.id))
    versions = select(func.max(ScheduleVersion.id))
    withdrawals = select(func.max(ScheduleChange.id)).where(ScheduleChange.action == "schedule.unpublish")
    if department_ids is not None:
        scoped = select(Schedule.id).where(Schedule.department_id.in_(department_ids))
        changes = changes.where(ScheduleChange.schedule_id.in_(scoped))
        versions = versions.where(ScheduleVersion.schedule_id.in_(scoped))
        withdrawals = withdrawals.where(ScheduleChange.schedule_id.in_(scoped))
    return (session.execute(changes).scalar_one_or_none() or 0, session.execute(versions).scalar_one_or_none() or 0,
            session.execute(withdrawals).scalar_one_or_none() or 0)


def list_published_slots(
    *, session: Session, from_date: date, to_date: date, department_ids: Sequence[int] | None = None
) -> list[Slot]:
    """Slots of published schedules dated ``from_date``..``to_date`` (local dates, inclusive), for exports."""
    query = (select(Slot).join(Schedule, Slot.schedule_id == Schedule.id)
             .join(Assignment, Slot.assignment_id == Assignment.id)
             .where(Schedule.status == ScheduleStatus.PUBLISHED.value, Slot.on_date >= from_date,
                    Slot.on_date <= to_date)
             .order_by(Slot.on_date, Slot.starts_at, Assignment.call_order, Slot.id))
    if department_ids is not None:
        query = query.where(Slot.department_id.in_(department_ids))
    return list(session.execute(query).scalars())


def list_versions(*, session: Session, schedule_id: int) -> list[ScheduleVersion]:
    get_schedule(session=session, schedule_id=schedule_id)
    return list(session.execute(select(ScheduleVersion).where(ScheduleVersion.schedule_id == schedule_id)
                                .order_by(ScheduleVersion.version)).scalars())


def list_changes(*, session: Session, schedule_id: int, since_version: int = 0) -> list[ScheduleChange]:
    """Changes made after publish ``since_version`` (all changes after the first publish by default)."""
    get_schedule(session=session, schedule_id=schedule_id)
    return list(session.execute(
        select(ScheduleChange).where(ScheduleChange.schedule_id == schedule_id,
                                     ScheduleChange.after_version >= max(since_version, 1))
        .order_by(ScheduleChange.id)).scalars())


# -- slots --------------------------------------------------------------------------------------

def slot_snapshot(slot: Slot) -> dict[str, Any]:
    """The facts an export needs about one slot, as plain JSON."""
    return {
        "slot_id": slot.id,
        "date": slot.on_date.isoformat(),
        "assignment_id": slot.assignment_id,
        "assignment_code": slot.assignment.code,
        "call_order": slot.assignment.call_order,
        "person_id": slot.person_id,
        "username": slot.person.username if slot.person is not None else None,
        "placeholder_name": slot.placeholder_name,
        "placeholder_contact": slot.placeholder_contact,
        "starts_at": slot.starts_at.isoformat(),
        "ends_at": slot.ends_at.isoformat(),
        "notes": slot.notes,
        "source": slot.source,
    }


def list_slots(
    *, session: Session, schedule_id: int, on_date: date | None = None, person_id: int | None = None
) -> list[Slot]:
    query = (select(Slot).join(Assignment, Slot.assignment_id == Assignment.id)
             .where(Slot.schedule_id == schedule_id)
             .order_by(Slot.on_date, Slot.starts_at, Assignment.call_order, Slot.id))
    if on_date is not None:
        query = query.where(Slot.on_date == on_date)
    if person_id is not None:
        query = query.where(Slot.person_id == person_id)
    return list(session.execute(query).scalars())


def get_slot(*, session: Session, slot_id: int) -> Slot:
    slot = session.get(Slot, slot_id)
    if slot is None:
        raise NotFound(f"no slot {slot_id}")
    return slot


@dataclass(frozen=True)
class SlotFields:
    """Who works a slot: a person, or a placeholder with a number to call."""

    person_id: int | None = None
    placeholder_name: str | None = None
    placeholder_contact: str | None = None
    notes: str | None = None


def _check_worker(session: Session, schedule: Schedule, fields: SlotFields) -> Person | None:
    if fields.person_id is not None:
        if fields.placeholder_name or fields.placeholder_contact:
            raise Invalid("give a person or a placeholder, not both", field="placeholder_name")
        person = session.get(Person, fields.person_id)
        if person is None:
            raise Invalid(f"no person {fields.person_id}", field="person_id")
        if not person.active:
            raise Invalid(f"{person.username} is deactivated", field="person_id")
        if person.department_id != schedule.department_id and session.get(
                CrossCredential, (person.id, schedule.department_id)) is None:
            raise Invalid(f"{person.username} does not belong to {schedule.department.code} and is not "
                          "cross-credentialed to it", field="person_id")
        return person
    if not fields.placeholder_name:
        raise Invalid("a slot needs a person_id or a placeholder_name", field="person_id")
    if not fields.placeholder_contact:
        raise Invalid("a placeholder needs a contact number so the slot can be reached",
                      field="placeholder_contact")
    return None


def _check_free(
    session: Session, *, person: Person, assignment: Assignment, on_date: date, starts_at: datetime,
    ends_at: datetime, exclude: tuple[int, ...] = (),
) -> None:
    """Time off and double booking. Overlap is allowed when either slot's assignment allows it.

    The person's row is locked first (PostgreSQL; SQLite already serializes writers with BEGIN
    IMMEDIATE) so two concurrent bookings of one person cannot both pass the overlap check.
    """
    lock_for_writing(session)
    session.execute(select(Person.id).where(Person.id == person.id).with_for_update())
    off = session.execute(
        select(TimeOffRequest).where(TimeOffRequest.person_id == person.id,
                                     TimeOffRequest.status == RequestStatus.APPROVED.value,
                                     TimeOffRequest.starts_on <= on_date, TimeOffRequest.ends_on >= on_date)
    ).scalars().first()
    if off is not None:
        raise Conflict(f"{person.username} has approved time off {off.starts_on}..{off.ends_on}", field="person_id")
    query = (select(Slot).join(Assignment, Slot.assignment_id == Assignment.id)
             .where(Slot.person_id == person.id,
                    Slot.starts_at < ends_at,
                    Slot.starts_at > starts_at - timedelta(hours=MAX_SLOT_HOURS),
                    Slot.ends_at > starts_at))
    if exclude:
        query = query.where(Slot.id.not_in(exclude))
    for other in session.execute(query).scalars():
        same = other.assignment_id == assignment.id and other.on_date == on_date
        if same or not (assignment.allow_overlap or other.assignment.allow_overlap):
            raise Conflict(
                f"{person.username} is already booked in overlapping time: slot {other.id} "
                f"({other.assignment.code} on {other.on_date})", field="person_id")


def _log_change(session: Session, clock: Clock, actor: Actor, schedule: Schedule, action: str, slot_id: int | None,
                before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    if schedule.status != ScheduleStatus.PUBLISHED:
        return
    session.add(ScheduleChange(schedule_id=schedule.id, after_version=schedule.version, at=clock.now(),
                               actor_id=actor.person_id, actor_name=actor.username, action=action,
                               slot_id=slot_id, before=before, after=after))


def build_slot(
    *, session: Session, clock: Clock, actor: Actor, schedule: Schedule, assignment: Assignment, on_date: date,
    fields: SlotFields, source: str = SlotSource.MANUAL.value, external_key: str | None = None,
) -> Slot:
    """Validate and add one slot without auditing it (callers audit one slot or one whole import)."""
    if not schedule.starts_on <= on_date <= schedule.ends_on:
        raise Invalid(f"{on_date} is outside schedule {schedule.id} ({schedule.starts_on}..{schedule.ends_on})",
                      field="on_date")
    if assignment.department_id != schedule.department_id:
        raise Invalid(f"assignment {assignment.code} belongs to another department", field="assignment_id")
    if not assignment.active:
        raise Invalid(f"assignment {assignment.code} is retired", field="assignment_id")
    person = _check_worker(session, schedule, fields)
    span = slot_span(on_date, assignment.start_time, assignment.end_time, schedule.department.site.timezone)
    if person is not None:
        _check_free(session, person=person, assignment=assignment, on_date=on_date, starts_at=span.starts_at,
                    ends_at=span.ends_at)
    now = clock.now()
    slot = Slot(schedule_id=schedule.id, assignment_id=assignment.id, department_id=schedule.department_id,
                on_date=on_date, person_id=fields.person_id, placeholder_name=fields.placeholder_name,
                placeholder_contact=fields.placeholder_contact, notes=fields.notes, starts_at=span.starts_at,
                ends_at=span.ends_at, source=source, revision=0, external_key=external_key, created_at=now,
                updated_at=now)
    session.add(slot)
    session.flush()
    _log_change(session, clock, actor, schedule, "slot.add", slot.id, None, slot_snapshot(slot))
    return slot


def add_slot(
    *, session: Session, clock: Clock, actor: Actor, schedule_id: int, assignment_id: int, on_date: date,
    fields: SlotFields,
) -> Slot:
    schedule = get_schedule(session=session, schedule_id=schedule_id)
    check_may_edit(session=session, actor=actor, department_id=schedule.department_id)
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise Invalid(f"no assignment {assignment_id}", field="assignment_id")
    slot = build_slot(session=session, clock=clock, actor=actor, schedule=schedule, assignment=assignment,
                      on_date=on_date, fields=fields)
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.add_slot", object_type="slot",
                 object_id=slot.id, detail=slot_snapshot(slot))
    return slot


def update_slot(
    *, session: Session, clock: Clock, actor: Actor, slot_id: int, fields: SlotFields,
) -> Slot:
    """Replace who works the slot (and its notes); the date and assignment stay."""
    slot = get_slot(session=session, slot_id=slot_id)
    schedule = get_schedule(session=session, schedule_id=slot.schedule_id)
    check_may_edit(session=session, actor=actor, department_id=schedule.department_id)
    return reassign_slot(session=session, clock=clock, actor=actor, slot=slot, schedule=schedule, fields=fields,
                     action="slot.update")


def reassign_slot(
    *, session: Session, clock: Clock, actor: Actor, slot: Slot, schedule: Schedule, fields: SlotFields,
    action: str, exclude: tuple[int, ...] = (),
) -> Slot:
    """Change who works a slot after checking every rule; change-logged and audited."""
    before = slot_snapshot(slot)
    person = _check_worker(session, schedule, fields)
    if person is not None:
        _check_free(session, person=person, assignment=slot.assignment, on_date=slot.on_date,
                    starts_at=slot.starts_at, ends_at=slot.ends_at, exclude=(slot.id, *exclude))
    slot.person_id = fields.person_id
    slot.placeholder_name = fields.placeholder_name
    slot.placeholder_contact = fields.placeholder_contact
    slot.notes = fields.notes
    slot.revision += 1
    slot.updated_at = clock.now()
    session.flush()
    session.refresh(slot)
    after = slot_snapshot(slot)
    _log_change(session, clock, actor, schedule, action, slot.id, before, after)
    audit.record(session=session, clock=clock, actor=actor, action=f"scheduling.{action.replace('.', '_')}",
                 object_type="slot", object_id=slot.id, detail={"before": before, "after": after})
    return slot


def remove_slot(*, session: Session, clock: Clock, actor: Actor, slot_id: int) -> None:
    slot = get_slot(session=session, slot_id=slot_id)
    schedule = get_schedule(session=session, schedule_id=slot.schedule_id)
    check_may_edit(session=session, actor=actor, department_id=schedule.department_id)
    before = slot_snapshot(slot)
    session.execute(delete(SwapRequest).where(or_(SwapRequest.slot_id == slot_id,
                                                  SwapRequest.other_slot_id == slot_id)))
    session.delete(slot)
    session.flush()
    _log_change(session, clock, actor, schedule, "slot.remove", slot_id, before, None)
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.remove_slot", object_type="slot",
                 object_id=slot_id, detail=before)


# -- swaps --------------------------------------------------------------------------------------

def request_swap(
    *, session: Session, clock: Clock, actor: Actor, slot_id: int, to_person_id: int,
    other_slot_id: int | None = None, reason: str | None = None,
) -> SwapRequest:
    """The person on the slot (or a scheduler) asks; a scheduler of the department approves."""
    slot = get_slot(session=session, slot_id=slot_id)
    if actor.person_id is None or slot.person_id != actor.person_id:
        check_may_edit(session=session, actor=actor, department_id=slot.department_id)
    if session.get(Person, to_person_id) is None:
        raise Invalid(f"no person {to_person_id}", field="to_person_id")
    if to_person_id == slot.person_id:
        raise Invalid("the slot is already theirs", field="to_person_id")
    if other_slot_id is not None:
        other = session.get(Slot, other_slot_id)
        if other is None:
            raise Invalid(f"no slot {other_slot_id}", field="other_slot_id")
        if other.person_id != to_person_id:
            raise Invalid(f"slot {other_slot_id} is not worked by person {to_person_id}", field="other_slot_id")
    swap = SwapRequest(slot_id=slot_id, other_slot_id=other_slot_id, from_person_id=slot.person_id,
                       to_person_id=to_person_id,
                       requested_by=actor.username, requested_by_id=actor.person_id, reason=reason,
                       status=RequestStatus.PENDING.value, created_at=clock.now())
    session.add(swap)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.request_swap", object_type="swap",
                 object_id=swap.id, detail={"slot_id": slot_id, "to_person_id": to_person_id,
                                            "other_slot_id": other_slot_id})
    return swap


def decide_swap(*, session: Session, clock: Clock, actor: Actor, swap_id: int, approve: bool) -> SwapRequest:
    swap = session.get(SwapRequest, swap_id)
    if swap is None:
        raise NotFound(f"no swap request {swap_id}")
    slot = get_slot(session=session, slot_id=swap.slot_id)
    check_may_edit(session=session, actor=actor, department_id=slot.department_id)
    if swap.status != RequestStatus.PENDING:
        raise Conflict(f"swap request {swap_id} is already {swap.status}", field="status")
    if approve:
        giver = slot.person_id
        if giver != swap.from_person_id:
            raise Conflict(f"slot {slot.id} changed hands since the request", field="slot_id")
        other = session.get(Slot, swap.other_slot_id) if swap.other_slot_id is not None else None
        if other is not None:
            if other.person_id != swap.to_person_id:
                raise Conflict(f"slot {other.id} changed hands since the request", field="other_slot_id")
            other_schedule = get_schedule(session=session, schedule_id=other.schedule_id)
            check_may_edit(session=session, actor=actor, department_id=other.department_id)
            if giver is None:
                raise Conflict("a placeholder slot cannot be traded", field="slot_id")
            reassign_slot(session=session, clock=clock, actor=actor, slot=other, schedule=other_schedule,
                      fields=SlotFields(person_id=giver, notes=other.notes), action="slot.swap",
                      exclude=(slot.id,))
        schedule = get_schedule(session=session, schedule_id=slot.schedule_id)
        reassign_slot(session=session, clock=clock, actor=actor, slot=slot, schedule=schedule,
                  fields=SlotFields(person_id=swap.to_person_id, notes=slot.notes), action="slot.swap",
                  exclude=(other.id,) if other is not None else ())
    swap.status = (RequestStatus.APPROVED if approve else RequestStatus.REJECTED).value
    swap.decided_by = actor.username
    swap.decided_at = clock.now()
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.decide_swap", object_type="swap",
                 object_id=swap_id, detail={"status": swap.status})
    return swap


def _scheduler_department(session: Session, actor: Actor) -> int | None:
    if not actor.has_any(Role.SCHEDULER.value) or actor.person_id is None:
        return None
    person = session.get(Person, actor.person_id)
    return person.department_id if person is not None else None


def _sees_all_requests(actor: Actor) -> bool:
    return actor.has_any(Role.SYSTEM_ADMIN.value, "system")


def list_swaps(*, session: Session, actor: Actor, status: str | None = None) -> list[SwapRequest]:
    """(1) Swap requests the caller is part of (asked, gives or takes the shift); a scheduler also
    sees those of their department's slots, a system administrator all of them."""
    query = select(SwapRequest).order_by(SwapRequest.id)
    if status is not None:
        query = query.where(SwapRequest.status == status)
    if not _sees_all_requests(actor):
        me = actor.person_id if actor.person_id is not None else -1
        involved = or_(SwapRequest.requested_by_id == me, SwapRequest.from_person_id == me,
                       SwapRequest.to_person_id == me)
        department = _scheduler_department(session, actor)
        if department is not None:
            query = query.join(Slot, Slot.id == SwapRequest.slot_id)
            involved = or_(involved, Slot.department_id == department)
        query = query.where(involved)
    return list(session.execute(query).scalars())


# -- time off -----------------------------------------------------------------------------------

def request_time_off(
    *, session: Session, clock: Clock, actor: Actor, person_id: int, starts_on: date, ends_on: date,
    reason: str | None = None,
) -> TimeOffRequest:
    person = session.get(Person, person_id)
    if person is None:
        raise Invalid(f"no person {person_id}", field="person_id")
    if actor.person_id is None or person_id != actor.person_id:
        if person.department_id is None:
            if not actor.has_any(Role.SYSTEM_ADMIN.value, "system"):
                raise Forbidden("only a system administrator may request time off for this person")
        else:
            check_may_edit(session=session, actor=actor, department_id=person.department_id)
    if ends_on < starts_on:
        raise Invalid(f"ends_on {ends_on} is before starts_on {starts_on}", field="ends_on")
    request = TimeOffRequest(person_id=person_id, starts_on=starts_on, ends_on=ends_on, reason=reason,
                             status=RequestStatus.PENDING.value, requested_by=actor.username,
                             created_at=clock.now())
    session.add(request)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.request_time_off",
                 object_type="time_off", object_id=request.id,
                 detail={"person_id": person_id, "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()})
    return request


def decide_time_off(
    *, session: Session, clock: Clock, actor: Actor, request_id: int, approve: bool
) -> TimeOffRequest:
    """Approval is refused while the person still works slots in those days: reassign them first."""
    request = session.get(TimeOffRequest, request_id)
    if request is None:
        raise NotFound(f"no time-off request {request_id}")
    person = session.get(Person, request.person_id)
    if person is None or person.department_id is None:
        if not actor.has_any(Role.SYSTEM_ADMIN.value, "system"):
            raise Forbidden("only a system administrator may decide this request")
    else:
        check_may_edit(session=session, actor=actor, department_id=person.department_id)
    if request.status != RequestStatus.PENDING:
        raise Conflict(f"time-off request {request_id} is already {request.status}", field="status")
    if approve:
        busy = session.execute(
            select(Slot.id, Slot.on_date).where(Slot.person_id == request.person_id,
                                                Slot.on_date >= request.starts_on,
                                                Slot.on_date <= request.ends_on).order_by(Slot.on_date)
        ).all()
        if busy:
            listed = ", ".join(f"slot {sid} on {day}" for sid, day in busy[:10])
            raise Conflict(f"reassign these first: {listed}", field="starts_on")
    request.status = (RequestStatus.APPROVED if approve else RequestStatus.REJECTED).value
    request.decided_by = actor.username
    request.decided_at = clock.now()
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.decide_time_off",
                 object_type="time_off", object_id=request_id, detail={"status": request.status})
    return request


def list_time_off(*, session: Session, actor: Actor, person_id: int | None = None) -> list[TimeOffRequest]:
    """(2) A person's time off carries its reason (an illness, a bereavement): the person sees their
    own requests, a scheduler those of their department's people, a system administrator all."""
    query = select(TimeOffRequest).order_by(TimeOffRequest.starts_on, TimeOffRequest.id)
    if person_id is not None:
        query = query.where(TimeOffRequest.person_id == person_id)
    if not _sees_all_requests(actor):
        mine = TimeOffRequest.person_id == (actor.person_id if actor.person_id is not None else -1)
        department = _scheduler_department(session, actor)
        if department is not None:
            query = query.join(Person, Person.id == TimeOffRequest.person_id).where(
                or_(mine, Person.department_id == department))
        else:
            query = query.where(mine)
    return list(session.execute(query).scalars())


def count_slots(*, session: Session, schedule_id: int) -> int:
    return session.execute(select(func.count()).select_from(Slot).where(Slot.schedule_id == schedule_id)).scalar_one()

