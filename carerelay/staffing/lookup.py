"""Who is assigned where at an instant, with the reason: what ``location:`` addresses resolve from.

Plain reads (no alerts, no writes), so routing can import them without a cycle. For a bed and a
care role the most specific assignment wins: the bed's, else its room's, else the unit's. A bed with
no one in that role goes to the unit's charge nurse, saying so; only a unit with no charge nurse
either resolves to no one, which the escalation engine sends to its fallback (never nobody).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from carerelay.directory.models import Person, Site
from carerelay.patients.models import Bed, Unit
from carerelay.scheduling.timeline import zone
from carerelay.staffing.models import MAX_ASSIGNMENT_HOURS, CareRole, StaffAssignment
from carerelay.staffing.roles import find_role, label

__all__ = ["LocationAnswer", "active_at", "charge_nurses", "find_role", "place", "resolve_location", "window"]


def place(unit_code: str, room: str = "", bed: str = "") -> str:
    """'4W-412-B', '4W room 412' or '4W', as the floor says it."""
    if room and bed:
        return f"{unit_code}-{room}-{bed}"
    if room:
        return f"{unit_code} room {room}"
    return unit_code


def window(row: StaffAssignment, timezone: str) -> str:
    tz = zone(timezone)
    start, end = row.starts_at.astimezone(tz), row.ends_at.astimezone(tz)
    if end - start > timedelta(hours=24):
        return f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M}"
    return f"{start:%H:%M}–{end:%H:%M}"


def active_at(session: Session, *, at: datetime, unit_id: int | None = None, person_id: int | None = None,
              role: str | None = None) -> list[StaffAssignment]:
    """Assignments in effect at ``at`` (``starts_at <= at < ends_at``), oldest first."""
    query = select(StaffAssignment).where(StaffAssignment.starts_at <= at, StaffAssignment.ends_at > at,
                                          StaffAssignment.starts_at > at - timedelta(hours=MAX_ASSIGNMENT_HOURS))
    if unit_id is not None:
        query = query.where(StaffAssignment.unit_id == unit_id)
    if person_id is not None:
        query = query.where(StaffAssignment.person_id == person_id)
    if role is not None:
        query = query.where(StaffAssignment.care_role == role)
    return list(session.execute(query.order_by(StaffAssignment.starts_at, StaffAssignment.id)).scalars())


def charge_nurses(session: Session, *, unit_id: int, at: datetime) -> list[StaffAssignment]:
    return [a for a in active_at(session, at=at, unit_id=unit_id, role=CareRole.CHARGE_NURSE.value)
            if a.bed_id is None and not a.room]


@dataclass
class LocationAnswer:
    recipients: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# A bed's, its room's and its unit's assignments in a role at an instant. The statements below are
# built once: every alert to a bed runs them, and building one costs more than running it.
_TIERS = (select(StaffAssignment).where(
    StaffAssignment.unit_id == bindparam("unit_id"), StaffAssignment.care_role == bindparam("role"),
    StaffAssignment.starts_at <= bindparam("at"), StaffAssignment.ends_at > bindparam("at"),
    StaffAssignment.starts_at > bindparam("since"),
    or_(StaffAssignment.bed_id == bindparam("bed_id"),
        StaffAssignment.bed_id.is_(None)
        & ((StaffAssignment.room == "") | (StaffAssignment.room == bindparam("room")))))
    .order_by(StaffAssignment.starts_at, StaffAssignment.id))
_ACTIVE = select(Person.id, Person.active, Person.display_name).where(Person.id.in_(bindparam("ids", expanding=True)))


def _tiered(session: Session, unit: Unit, room: str, bed: Bed | None, role: CareRole,
            at: datetime) -> tuple[str, list[StaffAssignment]]:
    rows = session.execute(_TIERS, {
        "unit_id": unit.id, "role": role.value, "at": at, "since": at - timedelta(hours=MAX_ASSIGNMENT_HOURS),
        "bed_id": bed.id if bed is not None else -1, "room": room}).scalars().all()
    tiers = (("bed", [r for r in rows if bed is not None and r.bed_id == bed.id]),
             ("room", [r for r in rows if r.bed_id is None and room and r.room == room]),
             ("unit", [r for r in rows if r.bed_id is None and not r.room]))
    for tier, found in tiers:
        if found:
            return tier, found
    return "", []


def _active_people(session: Session, rows: list[StaffAssignment], notes: list[str]) -> list[StaffAssignment]:
    ids = {r.person_id for r in rows}
    people = {row.id: row for row in session.execute(_ACTIVE, {"ids": list(ids)})} if ids else {}
    kept = []
    for row in rows:
        person = people.get(row.person_id)
        if person is None or not person.active:
            notes.append(f"skipped {person.display_name if person else row.person_id}: inactive")
            continue
        kept.append(row)
    return kept


# The unit by code (the first, as patients.find_unit takes it), its site's time zone and, when asked,
# the bed: one statement where an alert's address used to cost four (unit, site, staffing unit, bed).
_PLACE = (select(Unit, Site.timezone, Bed).join(Site, Site.id == Unit.site_id)
          .outerjoin(Bed, (Bed.unit_id == Unit.id) & (Bed.room == bindparam("room")) & (Bed.bed == bindparam("bed")))
          .where(Unit.code == bindparam("code")).order_by(Unit.id).limit(1))


def resolve_location(session: Session, *, unit_code: str, room: str, bed: str, role: CareRole,
                     at: datetime) -> LocationAnswer:
    """The people a bed's (or a unit's) care role reaches at ``at``, each with the reason."""
    answer = LocationAnswer()
    found = session.execute(_PLACE, {"code": unit_code, "room": room if room and bed else None,
                                     "bed": bed}).first()
    if found is None:
        answer.notes.append(f"no unit {unit_code!r} to find the {label(role)} of")
        return answer
    unit, tz, bed_row = found
    where = place(unit.code, room, bed)
    if room and bed and bed_row is None:
        answer.notes.append(f"no bed {room}-{bed} on unit {unit.code}")
    tier, rows = _tiered(session, unit, room, bed_row, role, at)
    rows = _active_people(session, rows, answer.notes)
    for row in rows:
        scope = "" if tier in ("bed", "") or where == unit.code else f" (assigned to {place(unit.code, row.room)})"
        answer.recipients.append((row.person_id, f"{where} {label(role)}{scope}, {row.origin} for {window(row, tz)}"))
    if answer.recipients or role == CareRole.CHARGE_NURSE:
        if not answer.recipients:
            answer.notes.append(f"no charge nurse assigned to {unit.code} at {at:%Y-%m-%d %H:%M} UTC")
        return answer
    charge = _active_people(session, charge_nurses(session, unit_id=unit.id, at=at), answer.notes)
    for row in charge:
        answer.recipients.append((row.person_id, f"no {label(role)} assigned to {where}; charge nurse of {unit.code}, "
                                                 f"{row.origin} for {window(row, tz)}"))
    if not charge:
        answer.notes.append(f"no {label(role)} assigned to {where} and no charge nurse on {unit.code} "
                            f"at {at:%Y-%m-%d %H:%M} UTC")
    return answer
