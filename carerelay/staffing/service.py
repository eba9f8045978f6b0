"""Making, ending and copying staff assignments, and deciding between sources that disagree.

Every source — the charge nurse (``manual``), a flat file (``file``), an assignment system
(``sync``) and ADT's ROL segments (``adt_rol``) — goes through ``apply``, so one set of rules holds:

1. The target must exist (unit, room, bed), the person must be active, the role known, and the end
   after the start (``Invalid`` naming the field). Charge nurses and unit clerks are assigned to a
   unit, never to a bed. Without times, an assignment lasts from now to the end of the unit's shift.
2. A repeat of what is already assigned changes nothing. The same person in the same place from a
   more trusted source takes the place of the weaker one; from a weaker one it changes nothing.
3. A bed has one primary nurse and a unit one charge nurse at a time. Another person in that place:
   the same source replaces its own earlier word (a newer file, a newer sync run; a charge nurse only
   with ``replace``, else a 409 naming who is there); between different sources the unit's
   precedence decides, and the disagreement is recorded as a conflict and reported — never silently.
4. A person works one unit at a time (respiratory therapists excepted): an assignment on another unit
   ends theirs elsewhere (a move, reported to the charge nurse they left) unless a more trusted
   source holds them there, which is again a conflict.
5. History is kept: an assignment is never deleted, only ended (``ends_at`` moves, ``planned_ends_at``
   stays, ``end_reason`` and ``replaced_by_id`` say why), and the past is never rewritten: a change
   takes effect from now whenever someone else held the place (or the person) earlier.

A charge nurse at the keyboard gets errors (``interactive``); feeds get a ``Change`` describing a
refusal, so a file reports it on its row and an HL7 message in its notes. Nothing here commits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.audit import service as audit
from carerelay.core.actor import SYSTEM, Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Conflict, Forbidden, Invalid, NotFound
from carerelay.directory.models import Person, Role
from carerelay.patients import service as patients
from carerelay.patients.models import Bed, Unit
from carerelay.patients.service import CareTeamEntry
from carerelay.staffing import handover, lookup, roles, watch
from carerelay.staffing.models import (
    MAX_ASSIGNMENT_HOURS,
    CareRole,
    Source,
    StaffAssignment,
    StaffingConflict,
    StaffingUnit,
)
from carerelay.staffing.shifts import (
    UnitSettings,
    check_precedence,
    next_shift,
    parse_changes,
    previous_shift,
    settings_for,
    shift_at,
)

ADMINS = ("system", Role.SYSTEM_ADMIN.value, Role.INTEGRATION_ADMIN.value)

# ---------------------------------------------------------------- targets and proposals


@dataclass(frozen=True)
class Target:
    unit: Unit
    room: str = ""
    bed: Bed | None = None

    @property
    def label(self) -> str:
        return lookup.place(self.unit.code, self.room, self.bed.bed if self.bed is not None else "")


@dataclass(frozen=True)
class Proposal:
    """One validated assignment some source wants."""

    target: Target
    person: Person
    role: CareRole
    starts_at: datetime
    ends_at: datetime
    source: str
    origin: str
    batch: str
    assigned_by_id: int | None = None
    feed_id: int | None = None
    external_key: str | None = None
    encounter_id: int | None = None
    copied_from_id: int | None = None


@dataclass
class Change:
    """What ``apply`` did with one proposal: created, unchanged, past, conflict (precedence kept what
    was there) or refused (``field_name``/``message`` say why)."""

    outcome: str
    assignment: StaffAssignment | None = None
    message: str = ""
    field_name: str | None = None
    ended: list[StaffAssignment] = field(default_factory=list)
    conflicts: list[StaffingConflict] = field(default_factory=list)


@dataclass
class Notices:
    """Conflicts and moves of one batch, told to each unit's charge nurse in one alert."""

    conflicts: dict[int, list[StaffingConflict]] = field(default_factory=dict)
    moves: dict[int, list[str]] = field(default_factory=dict)

    def conflict(self, unit_id: int, row: StaffingConflict) -> None:
        self.conflicts.setdefault(unit_id, []).append(row)

    def moved(self, unit_id: int, text: str) -> None:
        self.moves.setdefault(unit_id, []).append(text)


def new_batch(kind: str) -> str:
    return f"{kind}:{uuid.uuid4().hex[:16]}"


def get_unit(session: Session, code: str, *, field: str = "unit") -> Unit:
    unit = patients.find_unit(session=session, code=code.strip())
    if unit is None:
        raise Invalid(f"no unit {code!r}", field=field)
    return unit


def check_target(session: Session, *, unit: str, room: str = "", bed: str = "", role: CareRole,
                 prefix: str = "") -> Target:
    found = get_unit(session, unit, field=f"{prefix}unit")
    room, bed = room.strip(), bed.strip()
    if role in roles.UNIT_ONLY and (room or bed):
        raise Invalid(f"a {roles.label(role)} is assigned to a whole unit, not to a room or bed",
                      field=f"{prefix}{'bed' if bed else 'room'}")
    if bed and not room:
        raise Invalid(f"bed {bed!r} needs its room", field=f"{prefix}room")
    if not room:
        return Target(found)
    beds = patients.unit_beds(session=session, unit_id=found.id)
    if not any(b.room == room for b in beds):
        raise Invalid(f"no room {room!r} on unit {found.code}", field=f"{prefix}room")
    if not bed:
        return Target(found, room)
    bed_row = next((b for b in beds if b.room == room and b.bed == bed), None)
    if bed_row is None:
        raise Invalid(f"no bed {room}-{bed} on unit {found.code}", field=f"{prefix}bed")
    return Target(found, room, bed_row)


def check_person(session: Session, person_id: int, *, field: str = "person_id") -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise Invalid(f"no person {person_id}", field=field)
    if not person.active:
        raise Invalid(f"{person.display_name} is inactive", field=field)
    return person


def check_window(settings: UnitSettings, now: datetime, starts_at: datetime | None, ends_at: datetime | None,
                 *, prefix: str = "") -> tuple[datetime, datetime]:
    """Default: the unit's shift in progress (or the shift the given start falls in)."""
    start = shift_at(settings, now).starts_at if starts_at is None else starts_at
    end = ends_at if ends_at is not None else shift_at(settings, start).ends_at
    if end <= start:
        raise Invalid(f"ends {end:%Y-%m-%d %H:%M} UTC, at or before it starts ({start:%Y-%m-%d %H:%M} UTC)",
                      field=f"{prefix}ends_at")
    if end - start > timedelta(hours=MAX_ASSIGNMENT_HOURS):
        raise Invalid(f"lasts longer than {MAX_ASSIGNMENT_HOURS // 24} days; assign per shift or per week",
                      field=f"{prefix}ends_at")
    return start, end


def settings_of(session: Session, unit: Unit) -> UnitSettings:
    return settings_for(session, unit)


def manual_origin(session: Session, actor: Actor, unit: Unit, now: datetime, starts_at: datetime | None = None) -> str:
    """"assigned by charge nurse Dana Whitaker" when the actor is in charge now or when it starts."""
    if actor.person_id is None:
        return f"assigned by {actor.username}"
    person = session.get_one(Person, actor.person_id)
    charge = any(a.person_id == actor.person_id for instant in {now, max(starts_at or now, now)}
                 for a in lookup.charge_nurses(session, unit_id=unit.id, at=instant))
    return f"assigned by {'charge nurse ' if charge else ''}{person.display_name}"


def check_may_manage(session: Session, actor: Actor, unit: Unit, at: datetime) -> None:
    """Administrators anywhere; a nurse on their own unit (home department) or where they are charge
    nurse now or next shift."""
    if actor.has_any(*ADMINS):
        return
    if actor.person_id is not None and actor.has_any(Role.NURSE.value):
        person = session.get_one(Person, actor.person_id)
        if unit.department_id is not None and person.department_id == unit.department_id:
            return
        settings = settings_for(session, unit)
        for instant in (at, next_shift(settings, at).starts_at):
            if any(a.person_id == actor.person_id for a in lookup.charge_nurses(session, unit_id=unit.id, at=instant)):
                return
    raise Forbidden(f"only {unit.code}'s charge nurse, its nurses or an administrator may change its assignments")


def may_manage(*, session: Session, actor: Actor, unit: Unit, at: datetime) -> bool:
    """``check_may_manage`` as a yes or no, for a page deciding whether to offer its forms."""
    try:
        check_may_manage(session, actor, unit, at)
    except Forbidden:
        return False
    return True


def units_in_charge(*, session: Session, person_id: int, at: datetime) -> list[Unit]:
    """The units this person is charge nurse of now or in the next shift: where their board is."""
    rows = session.execute(select(StaffAssignment.unit_id).where(
        StaffAssignment.person_id == person_id, StaffAssignment.care_role == CareRole.CHARGE_NURSE.value,
        StaffAssignment.ends_at > at, StaffAssignment.ends_at > StaffAssignment.starts_at,
        StaffAssignment.starts_at < at + timedelta(hours=MAX_ASSIGNMENT_HOURS)).distinct()).scalars().all()
    found = []
    for unit_id in sorted(rows):
        unit = session.get_one(Unit, unit_id)
        instants = (at, next_shift(settings_for(session, unit), at).starts_at)
        if any(a.person_id == person_id for instant in instants
               for a in lookup.charge_nurses(session, unit_id=unit.id, at=instant)):
            found.append(unit)
    return sorted(found, key=lambda u: u.code)


# ---------------------------------------------------------------- apply: the rules of the module docstring


def _overlapping(session: Session, *, unit_id: int | None = None, person_id: int | None = None,
                 role: str | None = None, start: datetime, end: datetime) -> list[StaffAssignment]:
    query = select(StaffAssignment).where(StaffAssignment.starts_at < end, StaffAssignment.ends_at > start,
                                          StaffAssignment.ends_at > StaffAssignment.starts_at)
    if unit_id is not None:
        query = query.where(StaffAssignment.unit_id == unit_id)
    if person_id is not None:
        query = query.where(StaffAssignment.person_id == person_id)
    if role is not None:
        query = query.where(StaffAssignment.care_role == role)
    return list(session.execute(query.order_by(StaffAssignment.starts_at, StaffAssignment.id)).scalars())


def _same_target(row: StaffAssignment, target: Target) -> bool:
    return (row.unit_id == target.unit.id and row.room == target.room
            and row.bed_id == (target.bed.id if target.bed is not None else None))


def _row_label(session: Session, row: StaffAssignment) -> str:
    unit = session.get_one(Unit, row.unit_id)
    bed = session.get(Bed, row.bed_id) if row.bed_id is not None else None
    return lookup.place(unit.code, row.room, bed.bed if bed is not None else "")


def _who(session: Session, row: StaffAssignment) -> str:
    return session.get_one(Person, row.person_id).display_name


def _describe(session: Session, row: StaffAssignment, tz: str) -> str:
    return (f"{_who(session, row)} as {roles.label(row.care_role)} of {_row_label(session, row)} "
            f"({row.origin}, {lookup.window(row, tz)})")


def _covers(row: StaffAssignment, p: Proposal, now: datetime) -> bool:
    """The row already says what the proposal says for the time still to come."""
    return row.ends_at == p.ends_at and row.starts_at <= max(p.starts_at, now)


def _carve(session: Session, clock: Clock, row: StaffAssignment, start: datetime, end: datetime,
           reason: str) -> list[StaffAssignment]:
    """Take [start, end) out of ``row``; a piece after ``end`` becomes a row of its own."""
    if row.ends_at <= start or row.starts_at >= end:
        return []
    now = clock.now()
    pieces = [row]
    if row.starts_at < start and end < row.ends_at:
        tail = StaffAssignment(**{c: getattr(row, c) for c in _COPY_COLUMNS}, starts_at=end, ends_at=row.ends_at,
                               planned_ends_at=row.planned_ends_at, created_at=now, updated_at=now)
        session.add(tail)
        pieces.append(tail)
        row.ends_at = start
    elif row.starts_at < start:
        row.ends_at = start
    elif end < row.ends_at:
        row.starts_at = end
    else:
        row.ends_at = row.starts_at
    row.end_reason = reason[:300]
    row.updated_at = now
    session.flush()
    return pieces


_COPY_COLUMNS = ("unit_id", "room", "bed_id", "person_id", "care_role", "source", "origin", "assigned_by_id",
                 "feed_id", "batch", "external_key", "encounter_id", "copied_from_id")


def _fingerprint(kind: str, existing: StaffAssignment, p: Proposal, outcome: str) -> str:
    raw = json.dumps([kind, existing.id, p.person.id, p.source, p.external_key or "", p.starts_at.isoformat(),
                      p.ends_at.isoformat(), p.target.label, outcome])
    return hashlib.sha256(raw.encode()).hexdigest()


def _record_conflict(session: Session, clock: Clock, kind: str, existing: StaffAssignment, p: Proposal,
                     outcome: str, message: str, notices: Notices | None) -> StaffingConflict:
    """An open conflict already seen for the same disagreement is counted, not recorded (or told) again."""
    now = clock.now()
    fingerprint = _fingerprint(kind, existing, p, outcome)
    row = session.execute(select(StaffingConflict).where(StaffingConflict.fingerprint == fingerprint,
                                                         StaffingConflict.resolved_at.is_(None))).scalars().first()
    watch.board_changed(session=session, clock=clock, unit_id=existing.unit_id)
    watch.board_changed(session=session, clock=clock, unit_id=p.target.unit.id)
    if row is not None:
        row.seen += 1
        row.last_seen_at = now
        return row
    row = StaffingConflict(
        unit_id=existing.unit_id, kind=kind, care_role=p.role.value, target=p.target.label, existing_id=existing.id,
        incoming={"person_id": p.person.id, "person": p.person.display_name, "source": p.source, "origin": p.origin,
                  "unit": p.target.unit.code, "target": p.target.label, "role": p.role.value,
                  "starts_at": p.starts_at.isoformat(), "ends_at": p.ends_at.isoformat(),
                  "external_key": p.external_key},
        outcome=outcome, message=message[:2000], fingerprint=fingerprint, first_seen_at=now, last_seen_at=now, seen=1)
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=SYSTEM, action="staffing.conflict", object_type="staff_assignment",
                 object_id=existing.id, detail={"conflict_id": row.id, "kind": kind, "outcome": outcome,
                                                "message": row.message, "incoming": row.incoming})
    if notices is not None:
        notices.conflict(existing.unit_id, row)
        if existing.unit_id != p.target.unit.id:
            notices.conflict(p.target.unit.id, row)
    return row


def _past_taken(session: Session, p: Proposal, now: datetime) -> bool:
    rows = session.execute(select(StaffAssignment).where(
        StaffAssignment.starts_at < now, StaffAssignment.ends_at > p.starts_at,
        StaffAssignment.ends_at > StaffAssignment.starts_at,
        or_(StaffAssignment.person_id == p.person.id,
            (StaffAssignment.unit_id == p.target.unit.id) & (StaffAssignment.care_role == p.role.value)))).scalars()
    for row in rows:
        if _same_target(row, p.target) and row.care_role == p.role.value and (
                row.person_id == p.person.id or p.role in roles.EXCLUSIVE):
            return True
        if (row.person_id == p.person.id and row.unit_id != p.target.unit.id and p.role not in roles.MULTI_UNIT
                and row.care_role not in roles.MULTI_UNIT):
            return True
    return False


def apply(*, session: Session, clock: Clock, actor: Actor, proposal: Proposal, settings: UnitSettings,
          replace: bool = False, interactive: bool = False, notices: Notices | None = None) -> Change:
    """Apply one proposal under the rules of the module docstring. Only the time still to come is
    decided; a start in the past stands when nobody else held the place then."""
    p = proposal
    now = clock.now()
    tz = settings.timezone
    if p.ends_at <= now:
        if interactive:
            raise Invalid(f"ends {p.ends_at:%Y-%m-%d %H:%M} UTC, which is in the past", field="ends_at")
        return Change("past", message="ends in the past")
    start, end = max(p.starts_at, now), p.ends_at  # decisions are about the time still to come
    rank = settings.rank
    superseded: list[tuple[StaffAssignment, str]] = []  # the source's own earlier word: ended entirely
    carve: list[tuple[StaffAssignment, str]] = []  # [start, end) taken out of these
    applied_conflicts: list[tuple[str, StaffAssignment, str]] = []
    blocked: list[tuple[str, StaffAssignment, str]] = []
    moves: list[StaffAssignment] = []

    def handled(row: StaffAssignment) -> bool:
        return any(row is r for r, _ in superseded) or any(row is r for r, _ in carve)

    # A stated start in the past stands only if nobody else held the place (or the person) then:
    # otherwise it takes effect from now, and the record of who was assigned earlier stays true.
    past_taken = p.starts_at < now and _past_taken(session, p, now)

    # The source's own earlier word about the same key (a vendor's assignment id, a patient's ROL).
    if p.external_key is not None:
        prior = session.execute(select(StaffAssignment).where(
            StaffAssignment.external_key == p.external_key, StaffAssignment.source == p.source,
            StaffAssignment.feed_id.is_(None) if p.feed_id is None else StaffAssignment.feed_id == p.feed_id,
            StaffAssignment.ends_at > now, StaffAssignment.ends_at > StaffAssignment.starts_at)).scalars().all()
        for row in prior:
            if (row.person_id == p.person.id and _same_target(row, p.target) and row.care_role == p.role.value
                    and _covers(row, p, now)):
                return Change("unchanged", row, "already assigned")
            superseded.append((row, f"changed by {p.origin}"))

    # Rule 2: the same person in the same place and role.
    for row in _overlapping(session, unit_id=p.target.unit.id, person_id=p.person.id, role=p.role.value,
                            start=start, end=end):
        if not _same_target(row, p.target) or handled(row):
            continue
        if rank(row.source) > rank(p.source) or (row.source == p.source and _covers(row, p, now)):
            return Change("unchanged", row, f"already assigned ({row.origin})")
        if row.source == p.source and (row.batch == p.batch or (interactive and not replace)):
            message = f"{_describe(session, row, tz)} overlaps this assignment"
            if interactive:
                raise Conflict(f"{message}; end it first or send replace=true", field="starts_at")
            return Change("refused", message=message, field_name="starts_at")
        carve.append((row, f"replaced by {p.origin}"))

    # Rule 3: one primary nurse per bed, one charge nurse per unit.
    if p.role in roles.EXCLUSIVE:
        for row in _overlapping(session, unit_id=p.target.unit.id, role=p.role.value, start=start, end=end):
            if not _same_target(row, p.target) or row.person_id == p.person.id or handled(row):
                continue
            there = _describe(session, row, tz)
            where_field = "bed" if p.target.bed is not None else ("room" if p.target.room else "unit")
            if row.source == p.source:
                if interactive and not replace:
                    raise Conflict(f"{p.target.label} already has {there}; end that assignment first or send "
                                   "replace=true", field=where_field)
                if not interactive and row.batch == p.batch:
                    return Change("refused", message=f"{p.target.label} already has {there}", field_name=where_field)
                carve.append((row, f"replaced by {p.origin}"))
            elif rank(p.source) > rank(row.source):
                carve.append((row, f"replaced by {p.origin} ({p.source} takes precedence over {row.source})"))
                applied_conflicts.append(("slot", row, f"{p.target.label} {roles.label(p.role)}: "
                                          f"{p.person.display_name} ({p.origin}) replaced {there}; {p.source} takes "
                                          f"precedence over {row.source}"))
            else:
                blocked.append(("slot", row, f"{p.target.label} {roles.label(p.role)}: {p.origin} names "
                                f"{p.person.display_name}, but {there} is kept; {row.source} takes precedence "
                                f"over {p.source}"))

    # Rule 4: one unit at a time.
    if p.role not in roles.MULTI_UNIT:
        for row in _overlapping(session, person_id=p.person.id, start=start, end=end):
            if row.unit_id == p.target.unit.id or row.care_role in roles.MULTI_UNIT or handled(row):
                continue
            there = _describe(session, row, tz)
            if row.source == p.source and row.batch == p.batch and not interactive:
                return Change("refused", message=f"{p.person.display_name} is also {there}", field_name="person")
            if row.source == p.source or rank(p.source) > rank(row.source):
                carve.append((row, f"moved to {p.target.unit.code} ({p.origin})"))
                moves.append(row)
                if row.source != p.source:
                    applied_conflicts.append(("person", row, f"{p.person.display_name} moved to "
                                              f"{p.target.label} ({p.origin}), ending {there}"))
            else:
                blocked.append(("person", row, f"{p.origin} puts {p.person.display_name} on {p.target.label}, but "
                                f"{there} is kept; {row.source} takes precedence over {p.source}"))

    if blocked:
        if interactive:
            raise Conflict("; ".join(m for _, _, m in blocked), field="person_id")
        change = Change("conflict", message="; ".join(m for _, _, m in blocked))
        for kind, row, message in blocked:
            change.conflicts.append(_record_conflict(session, clock, kind, row, p, "existing_kept", message, notices))
        return change

    if not (carve or superseded or past_taken):
        start = p.starts_at
    row = StaffAssignment(
        unit_id=p.target.unit.id, room=p.target.room, bed_id=p.target.bed.id if p.target.bed is not None else None,
        person_id=p.person.id, care_role=p.role.value, starts_at=start, ends_at=end, planned_ends_at=end,
        source=p.source, origin=p.origin[:300], assigned_by_id=p.assigned_by_id, feed_id=p.feed_id, batch=p.batch,
        external_key=p.external_key, encounter_id=p.encounter_id, copied_from_id=p.copied_from_id,
        created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    watch.board_changed(session=session, clock=clock, unit_id=row.unit_id)
    change = Change("created", row)
    for old, reason, window in ([(r, why, (max(r.starts_at, now), r.ends_at)) for r, why in superseded]
                                + [(r, why, (start, end)) for r, why in carve]):
        before = (old.starts_at, old.ends_at)
        _carve(session, clock, old, window[0], window[1], reason)
        watch.board_changed(session=session, clock=clock, unit_id=old.unit_id)
        old.replaced_by_id = row.id
        change.ended.append(old)
        audit.record(session=session, clock=clock, actor=actor, action="staffing.end", object_type="staff_assignment",
                     object_id=old.id, detail={"reason": reason, "was": [t.isoformat() for t in before],
                                               "now": [old.starts_at.isoformat(), old.ends_at.isoformat()],
                                               "replaced_by": row.id})
    for old in moves:
        if notices is not None:
            notices.moved(old.unit_id, f"{p.person.display_name} moved to {p.target.label} ({p.origin}); "
                                       f"{roles.label(old.care_role)} of {_row_label(session, old)} ended")
    for kind, old, message in applied_conflicts:
        conflict = _record_conflict(session, clock, kind, old, p, "incoming_applied", message, notices)
        conflict.applied_id = row.id
        change.conflicts.append(conflict)
    audit.record(session=session, clock=clock, actor=actor, action="staffing.assign", object_type="staff_assignment",
                 object_id=row.id, detail=_assignment_detail(row, p.target))
    handover.ensure_timers(session=session, clock=clock, unit=p.target.unit)
    return change


def _assignment_detail(row: StaffAssignment, target: Target) -> dict[str, Any]:
    return {"target": target.label, "person_id": row.person_id, "role": row.care_role, "source": row.source,
            "origin": row.origin, "starts_at": row.starts_at.isoformat(), "ends_at": row.ends_at.isoformat(),
            "external_key": row.external_key, "batch": row.batch}


def tell(*, session: Session, clock: Clock, notices: Notices, about: str) -> list[int]:
    """One alert per unit to its charge nurse for the conflicts and moves of a batch; ids of the alerts."""
    raised = []
    units = sorted(set(notices.conflicts) | set(notices.moves))
    for unit_id in units:
        unit = session.get_one(Unit, unit_id)
        conflicts = notices.conflicts.get(unit_id, [])
        moves = notices.moves.get(unit_id, [])
        lines = [f"Conflict {c.id}: {c.message}" for c in conflicts] + moves
        what = (f"{len(conflicts)} assignment conflict(s)" if conflicts else "") + (
            (" and " if conflicts and moves else "") + (f"{len(moves)} move(s) away" if moves else ""))
        alert = alerts.raise_alert(
            session=session, clock=clock, actor=SYSTEM, kind="staffing_conflict" if conflicts else "staffing_moved",
            priority="urgent", title=f"Staffing on {unit.code}: {what} ({about})"[:300],
            body="\n".join(lines)[:5000] + "\nReview on the unit's board: GET /api/staffing/conflicts?unit="
                 f"{unit.code}", address=f"location:{unit.code}/charge_nurse", source="staffing",
            source_ref=f"{about}:{unit.code}"[:200], department_id=unit.department_id,
            data={"conflict_ids": sorted({c.id for c in conflicts}), "unit": unit.code})
        for conflict in conflicts:
            if conflict.unit_id == unit_id:
                conflict.alert_id = alert.id
        raised.append(alert.id)
    return raised


# ---------------------------------------------------------------- the charge nurse's actions


@dataclass(frozen=True)
class AssignmentIn:
    unit: str
    role: str
    person_id: int
    room: str = ""
    bed: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None


def _manual_proposal(session: Session, clock: Clock, actor: Actor, item: AssignmentIn, batch: str,
                     prefix: str = "") -> tuple[Proposal, UnitSettings]:
    role = roles.check_role(item.role, field=f"{prefix}role")
    target = check_target(session, unit=item.unit, room=item.room, bed=item.bed, role=role, prefix=prefix)
    now = clock.now()
    check_may_manage(session, actor, target.unit, now)
    person = check_person(session, item.person_id, field=f"{prefix}person_id")
    settings = settings_for(session, target.unit)
    start, end = check_window(settings, now, item.starts_at, item.ends_at, prefix=prefix)
    return Proposal(target=target, person=person, role=role, starts_at=start, ends_at=end,
                    source=Source.MANUAL.value, origin=manual_origin(session, actor, target.unit, now, start),
                    batch=batch,
                    assigned_by_id=actor.person_id), settings


def assign(*, session: Session, clock: Clock, actor: Actor, item: AssignmentIn, replace: bool = False) -> Change:
    """One assignment by the charge nurse (or an administrator)."""
    proposal, settings = _manual_proposal(session, clock, actor, item, new_batch("manual"))
    notices = Notices()
    change = apply(session=session, clock=clock, actor=actor, proposal=proposal, settings=settings, replace=replace,
                   interactive=True, notices=notices)
    _tell_moves(session, clock, notices, actor)
    return change


def _tell_moves(session: Session, clock: Clock, notices: Notices, actor: Actor) -> None:
    if notices.conflicts or notices.moves:
        tell(session=session, clock=clock, notices=notices, about=f"changed by {actor.username}")


def assign_many(*, session: Session, clock: Clock, actor: Actor, items: Sequence[AssignmentIn],
                replace: bool = False) -> list[Change]:
    """A whole board at once: every item or none. The first refusal names its item and field."""
    batch = new_batch("manual")
    notices = Notices()
    changes = []
    for n, item in enumerate(items):
        prefix = f"assignments[{n}]."
        try:
            proposal, settings = _manual_proposal(session, clock, actor, item, batch, prefix)
            changes.append(apply(session=session, clock=clock, actor=actor, proposal=proposal, settings=settings,
                                 replace=replace, interactive=True, notices=notices))
        except (Invalid, Conflict) as exc:
            where = exc.field if exc.field and exc.field.startswith(prefix) else f"{prefix}{exc.field or 'item'}"
            raise type(exc)(f"{where}: {exc.message} (nothing was saved)", field=where) from None
    _tell_moves(session, clock, notices, actor)
    return changes


def get_assignment(*, session: Session, assignment_id: int) -> StaffAssignment:
    row = session.get(StaffAssignment, assignment_id)
    if row is None:
        raise NotFound(f"no assignment {assignment_id}")
    return row


def end_assignment(*, session: Session, clock: Clock, actor: Actor, assignment_id: int, at: datetime | None = None,
                   reason: str = "") -> StaffAssignment:
    """End now (or at ``at``); an assignment that has not started yet is cancelled."""
    row = get_assignment(session=session, assignment_id=assignment_id)
    unit = session.get_one(Unit, row.unit_id)
    now = clock.now()
    check_may_manage(session, actor, unit, now)
    when = at or now
    if when < now:
        raise Invalid("an assignment cannot be ended in the past", field="at")
    if row.ends_at <= max(when, row.starts_at):
        state = ("was already cancelled" if row.ends_at <= row.starts_at
                 else f"already ends at {row.ends_at:%Y-%m-%d %H:%M} UTC")
        raise Invalid(f"the assignment {state}", field="at")
    before = (row.starts_at, row.ends_at)
    row.ends_at = max(when, row.starts_at)
    row.end_reason = (reason or f"ended by {actor.username}")[:300]
    row.updated_at = now
    session.flush()
    watch.board_changed(session=session, clock=clock, unit_id=row.unit_id)
    audit.record(session=session, clock=clock, actor=actor, action="staffing.end", object_type="staff_assignment",
                 object_id=row.id, detail={"reason": row.end_reason, "was": [t.isoformat() for t in before],
                                           "ends_at": row.ends_at.isoformat()})
    return row


def list_assignments(*, session: Session, unit: str | None = None, person_id: int | None = None,
                     at: datetime | None = None, start: datetime | None = None, end: datetime | None = None,
                     limit: int = 500) -> list[StaffAssignment]:
    """In effect at ``at``, or overlapping [start, end); cancelled (zero-length) rows are left out."""
    query = select(StaffAssignment).where(StaffAssignment.ends_at > StaffAssignment.starts_at)
    if unit is not None:
        query = query.where(StaffAssignment.unit_id == get_unit(session, unit).id)
    if person_id is not None:
        query = query.where(StaffAssignment.person_id == person_id)
    if at is not None:
        query = query.where(StaffAssignment.starts_at <= at, StaffAssignment.ends_at > at)
    if start is not None:
        query = query.where(StaffAssignment.ends_at > start)
    if end is not None:
        query = query.where(StaffAssignment.starts_at < end)
    return list(session.execute(query.order_by(StaffAssignment.starts_at, StaffAssignment.id).limit(limit)).scalars())


@dataclass
class CopyReport:
    target_start: datetime
    target_end: datetime
    source_start: datetime
    source_end: datetime
    copied: list[StaffAssignment] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def copy_shift(*, session: Session, clock: Clock, actor: Actor, unit: str, into: str = "next",
               source_shift: str = "previous") -> CopyReport:
    """"Copy last shift's assignments": every assignment of the shift before the target shift (or the
    same shift a day earlier) is made again for the target shift, as the charge nurse's own; one that
    cannot be (the person left, the bed is taken) is skipped and listed, never forced."""
    found = get_unit(session, unit)
    now = clock.now()
    check_may_manage(session, actor, found, now)
    settings = settings_for(session, found)
    if into not in ("next", "current"):
        raise Invalid("into is next or current", field="into")
    if source_shift not in ("previous", "same_yesterday"):
        raise Invalid("source_shift is previous or same_yesterday", field="source_shift")
    target = next_shift(settings, now) if into == "next" else shift_at(settings, now)
    source = (previous_shift(settings, target.starts_at + timedelta(seconds=1)) if source_shift == "previous"
              else shift_at(settings, target.starts_at - timedelta(hours=24) + timedelta(minutes=1)))
    report = CopyReport(target.starts_at, target.ends_at, source.starts_at, source.ends_at)
    rows = [r for r in list_assignments(session=session, unit=found.code, start=source.starts_at, end=source.ends_at)
            if r.starts_at < source.ends_at and r.ends_at > source.starts_at]
    batch = new_batch("copy")
    origin = manual_origin(session, actor, found, now, target.starts_at) + f" (copied from {source.label})"
    notices = Notices()
    seen: set[tuple[int | None, str, int, str]] = set()
    for row in rows:
        key = (row.bed_id, row.room, row.person_id, row.care_role)
        if key in seen:
            continue
        seen.add(key)
        bed = session.get(Bed, row.bed_id) if row.bed_id is not None else None
        person = session.get_one(Person, row.person_id)
        where = lookup.place(found.code, row.room, bed.bed if bed else "")
        if not person.active:
            report.skipped.append({"assignment_id": row.id, "target": where, "reason": f"{person.display_name} is "
                                                                                      "inactive"})
            continue
        proposal = Proposal(target=Target(found, row.room, bed), person=person, role=CareRole(row.care_role),
                            starts_at=max(target.starts_at, now), ends_at=target.ends_at, source=Source.MANUAL.value,
                            origin=origin, batch=batch, assigned_by_id=actor.person_id, copied_from_id=row.id)
        try:
            with session.begin_nested():
                change = apply(session=session, clock=clock, actor=actor, proposal=proposal, settings=settings,
                               interactive=True, notices=notices)
        except (Invalid, Conflict) as exc:
            report.skipped.append({"assignment_id": row.id, "target": where, "reason": exc.message})
            continue
        if change.assignment is not None and change.outcome == "created":
            report.copied.append(change.assignment)
        else:
            report.skipped.append({"assignment_id": row.id, "target": where, "reason": change.message})
    audit.record(session=session, clock=clock, actor=actor, action="staffing.copy_shift", object_type="unit",
                 object_id=found.id, detail={"unit": found.code, "from": source.describe(), "into": target.describe(),
                                             "copied": len(report.copied), "skipped": len(report.skipped)})
    _tell_moves(session, clock, notices, actor)
    return report


# ---------------------------------------------------------------- units, conflicts, the board


def configure_unit(*, session: Session, clock: Clock, actor: Actor, unit: str, shift_changes: Sequence[str] | None,
                   flag_minutes_before: int | None, precedence: Sequence[str] | None) -> UnitSettings:
    if not actor.has_any(*ADMINS):
        raise Forbidden("only system or integration administrators change a unit's shift times and precedence")
    found = get_unit(session, unit)
    current = settings_for(session, found)
    changes = parse_changes(shift_changes) if shift_changes is not None else current.changes
    order = check_precedence(precedence) if precedence is not None else current.precedence
    if flag_minutes_before is not None and not 0 <= flag_minutes_before <= 240:
        raise Invalid("between 0 and 240 minutes", field="flag_minutes_before")
    row = session.get(StaffingUnit, found.id) or StaffingUnit(unit_id=found.id)
    row.shift_changes = [f"{t:%H:%M}" for t in changes]
    row.flag_minutes_before = current.flag_minutes_before if flag_minutes_before is None else flag_minutes_before
    row.precedence = list(order)
    row.updated_at = clock.now()
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="staffing.configure_unit", object_type="unit",
                 object_id=found.id, detail={"unit": found.code, "shift_changes": row.shift_changes,
                                             "flag_minutes_before": row.flag_minutes_before,
                                             "precedence": row.precedence})
    handover.reschedule(session=session, clock=clock, unit=found)
    watch.board_changed(session=session, clock=clock, unit_id=found.id)
    return settings_for(session, found)


def list_conflicts(*, session: Session, unit: str | None = None, open_only: bool = True,
                   limit: int = 200) -> list[StaffingConflict]:
    query = select(StaffingConflict)
    if unit is not None:
        query = query.where(StaffingConflict.unit_id == get_unit(session, unit).id)
    if open_only:
        query = query.where(StaffingConflict.resolved_at.is_(None))
    return list(session.execute(query.order_by(StaffingConflict.id.desc()).limit(limit)).scalars())


def resolve_conflict(*, session: Session, clock: Clock, actor: Actor, conflict_id: int, note: str) -> StaffingConflict:
    """The charge nurse (or an admin) has looked at it; what stands stays as precedence decided."""
    row = session.get(StaffingConflict, conflict_id)
    if row is None:
        raise NotFound(f"no conflict {conflict_id}")
    check_may_manage(session, actor, session.get_one(Unit, row.unit_id), clock.now())
    if row.resolved_at is not None:
        raise Invalid("the conflict is already resolved", field="conflict_id")
    row.resolved_at, row.resolved_by, row.resolution_note = clock.now(), actor.username, note[:500]
    watch.board_changed(session=session, clock=clock, unit_id=row.unit_id)
    audit.record(session=session, clock=clock, actor=actor, action="staffing.resolve_conflict",
                 object_type="staffing_conflict", object_id=row.id, detail={"note": row.resolution_note})
    return row


@dataclass
class BedView:
    bed_id: int
    room: str
    bed: str
    label: str
    occupied: bool
    assignments: list[StaffAssignment]
    primary_nurse_missing: bool


@dataclass
class Board:
    unit: Unit
    settings: UnitSettings
    at: datetime
    shift_label: str
    shift_start: datetime
    shift_end: datetime
    unit_level: list[StaffAssignment]
    rooms: dict[str, list[StaffAssignment]]
    beds: list[BedView]
    open_conflicts: int


def board(*, session: Session, clock: Clock, actor: Actor, unit: str, at: datetime | None = None) -> Board:
    """The charge nurse's board: who is on the unit, in each room and at each bed, and which occupied
    beds have no primary nurse. Reads which beds are occupied, so it is audited."""
    found = get_unit(session, unit)
    when = at or clock.now()
    settings = settings_for(session, found)
    shift = shift_at(settings, when)
    rows = lookup.active_at(session, at=when, unit_id=found.id)
    occupied = patients.occupied_beds(session=session, unit_id=found.id)
    beds = []
    wide = [r for r in rows if r.bed_id is None and r.care_role == CareRole.PRIMARY_NURSE]  # a room's or the unit's
    for bed in patients.unit_beds(session=session, unit_id=found.id):
        mine = [r for r in rows if r.bed_id == bed.id]
        has_nurse = any(r.care_role == CareRole.PRIMARY_NURSE for r in mine) or any(
            r.room in ("", bed.room) for r in wide)
        beds.append(BedView(bed.id, bed.room, bed.bed, lookup.place(found.code, bed.room, bed.bed),
                            bed.id in occupied, mine, bed.id in occupied and not has_nurse))
    rooms: dict[str, list[StaffAssignment]] = {}
    for r in rows:
        if r.bed_id is None and r.room:
            rooms.setdefault(r.room, []).append(r)
    conflicts = len(list_conflicts(session=session, unit=found.code))
    audit.record(session=session, clock=clock, actor=actor, action="staffing.board.read", object_type="unit",
                 object_id=found.id, detail={"unit": found.code, "at": when.isoformat(),
                                             "occupied": len(occupied)})
    return Board(found, settings, when, shift.label, shift.starts_at, shift.ends_at,
                 [r for r in rows if r.bed_id is None and not r.room], rooms, beds, conflicts)


# ---------------------------------------------------------------- ADT ROL → assignments


def _rol_role(entry: CareTeamEntry) -> CareRole | None:
    return roles.find_role(entry.role) or roles.find_role(entry.role_text)


def apply_adt_roles(*, session: Session, clock: Clock, actor: Actor, encounter_id: int,
                    entries: Sequence[CareTeamEntry], provider_fields: Sequence[str],
                    message_ref: str) -> list[str]:
    """ROL segments naming care roles (RN, "Primary Nurse"…) become ``adt_rol`` assignments to the
    patient's bed; they follow the patient, so a transfer or discharge ends them. Returns notes."""
    place_now = patients.encounter_place(session=session, encounter_id=encounter_id)
    if place_now is None:
        return []
    active, unit_id, bed_id = place_now
    now = clock.now()
    notes: list[str] = []
    for row in session.execute(select(StaffAssignment).where(
            StaffAssignment.encounter_id == encounter_id, StaffAssignment.source == Source.ADT_ROL.value,
            StaffAssignment.ends_at > now, StaffAssignment.ends_at > StaffAssignment.starts_at)).scalars().all():
        if not active or row.bed_id != bed_id:
            why = "patient left the bed (ADT)" if active else "encounter ended (ADT)"
            _carve(session, clock, row, now, row.ends_at, why)
            watch.board_changed(session=session, clock=clock, unit_id=row.unit_id)
            audit.record(session=session, clock=clock, actor=actor, action="staffing.end",
                         object_type="staff_assignment", object_id=row.id, detail={"reason": why})
            notes.append(f"ended {roles.label(row.care_role)} assignment {row.id}: {why}")
    wanted = [(e, _rol_role(e)) for e in entries if e.source == "ROL" and e.provider is not None]
    wanted = [(e, r) for e, r in wanted if r is not None]
    if not wanted or not active or unit_id is None:
        return notes
    unit = session.get_one(Unit, unit_id)
    bed = session.get(Bed, bed_id) if bed_id is not None else None
    if bed is None:
        notes.append("ROL care roles not assigned: the patient has no known bed")
        return notes
    settings = settings_for(session, unit)
    target = Target(unit, bed.room, bed)
    change_notices = Notices()
    for entry, role in wanted:
        assert entry.provider is not None and role is not None
        person_id = patients.match_person(session, entry.provider, provider_fields)
        who = entry.provider.name or entry.provider.id
        if person_id is None:
            notes.append(f"ROL {entry.role} {who} is not in the directory: not assigned to {target.label}")
            continue
        person = session.get_one(Person, person_id)
        key = f"encounter:{encounter_id}:{role.value}:{person_id}"
        if entry.action == "DE":
            for row in session.execute(select(StaffAssignment).where(
                    StaffAssignment.external_key == key, StaffAssignment.source == Source.ADT_ROL.value,
                    StaffAssignment.ends_at > now)).scalars().all():
                _carve(session, clock, row, now, row.ends_at, f"ROL delete ({message_ref})")
                watch.board_changed(session=session, clock=clock, unit_id=row.unit_id)
                notes.append(f"ended {roles.label(role)} {who} on {target.label} (ROL DE)")
            continue
        if not person.active:
            notes.append(f"ROL {who} is inactive: not assigned")
            continue
        try:
            start, end = check_window(settings, now, entry.starts_at, entry.ends_at)
        except Invalid as exc:
            notes.append(f"ROL {entry.role} {who}: {exc.message}")
            continue
        proposal = Proposal(target=target, person=person, role=role, starts_at=start, ends_at=end,
                            source=Source.ADT_ROL.value, origin=f"from ADT (ROL {entry.role_text or entry.role}, "
                                                                f"{message_ref})",
                            batch=message_ref, external_key=key, encounter_id=encounter_id)
        with session.begin_nested():
            change = apply(session=session, clock=clock, actor=actor, proposal=proposal, settings=settings,
                           notices=change_notices)
        if change.outcome not in ("created", "unchanged"):
            notes.append(f"ROL {roles.label(role)} {who} on {target.label}: {change.outcome} ({change.message})")
    if change_notices.conflicts or change_notices.moves:
        tell(session=session, clock=clock, notices=change_notices, about=message_ref)
    return notes


@dataclass(frozen=True)
class AssignmentView:
    """An assignment as people read it: names, not ids."""

    id: int
    unit: str
    room: str
    bed: str
    target: str
    person_id: int
    person_name: str
    role: str
    role_label: str
    starts_at: datetime
    ends_at: datetime
    planned_ends_at: datetime
    window: str
    source: str
    origin: str
    end_reason: str | None
    replaced_by_id: int | None
    external_key: str | None
    feed_id: int | None


def views(session: Session, rows: Sequence[StaffAssignment]) -> list[AssignmentView]:
    unit_ids = {r.unit_id for r in rows}
    units = {u.id: u for u in session.execute(select(Unit).where(Unit.id.in_(unit_ids))).scalars()} if rows else {}
    bed_ids = {r.bed_id for r in rows if r.bed_id is not None}
    beds = {b.id: b for b in session.execute(select(Bed).where(Bed.id.in_(bed_ids))).scalars()} if bed_ids else {}
    person_ids = {r.person_id for r in rows}
    people = ({p.id: p for p in session.execute(select(Person).where(Person.id.in_(person_ids))).scalars()}
              if rows else {})
    zones = {uid: settings_for(session, unit).timezone for uid, unit in units.items()}
    out = []
    for r in rows:
        unit = units[r.unit_id]
        bed = beds[r.bed_id].bed if r.bed_id is not None else ""
        out.append(AssignmentView(
            id=r.id, unit=unit.code, room=r.room, bed=bed, target=lookup.place(unit.code, r.room, bed),
            person_id=r.person_id, person_name=people[r.person_id].display_name, role=r.care_role,
            role_label=roles.label(r.care_role), starts_at=r.starts_at, ends_at=r.ends_at,
            planned_ends_at=r.planned_ends_at, window=lookup.window(r, zones[r.unit_id]), source=r.source,
            origin=r.origin, end_reason=r.end_reason, replaced_by_id=r.replaced_by_id, external_key=r.external_key,
            feed_id=r.feed_id))
    return out
