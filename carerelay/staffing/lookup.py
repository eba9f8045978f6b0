"""Who is assigned where at an instant, with the reason: what ``location:`` addresses resolve from.

Plain reads (no alerts, no writes), so routing can import them without a cycle. For a bed and a
care role the most specific assignment wins: the bed's, else its room's, else the unit's. A bed with
no one in that role goes to the unit's charge nurse, saying so; only a unit with no charge nurse
either resolves to no one, which the escalation engine sends to its fallback (never nobody).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from carerelay.core.db import flushed_connection
from carerelay.core.prepared import Prepared
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


class Span(Protocol):
    @property
    def starts_at(self) -> datetime: ...

    @property
    def ends_at(self) -> datetime: ...


def window(row: Span, timezone: str) -> str:
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


class _Assigned(NamedTuple):
    """An assignment in effect, with whether its person is active: what resolving a bed reads."""

    person_id: int
    bed_id: int | None
    room: str
    origin: str
    starts_at: datetime
    ends_at: datetime
    active: bool
    display_name: str


# A bed's, its room's and its unit's assignments in a role at an instant, with their people; with
# bed_id -1 and room "" the unit's own (its charge nurse). The statements below are prepared once
# (core/prepared.py): every alert to a bed runs them, and SQLAlchemy's work per statement was
# several times the database's.
_TIERS = Prepared(select(StaffAssignment.person_id, StaffAssignment.bed_id, StaffAssignment.room,
                         StaffAssignment.origin, StaffAssignment.starts_at, StaffAssignment.ends_at, Person.active,
                         Person.display_name)
                  .join(Person, Person.id == StaffAssignment.person_id).where(
    StaffAssignment.unit_id == bindparam("unit_id"), StaffAssignment.care_role == bindparam("role"),
    StaffAssignment.starts_at <= bindparam("at"), StaffAssignment.ends_at > bindparam("at"),
    StaffAssignment.starts_at > bindparam("since"),
    or_(StaffAssignment.bed_id == bindparam("bed_id"),
        StaffAssignment.bed_id.is_(None)
        & ((StaffAssignment.room == "") | (StaffAssignment.room == bindparam("room")))))
    .order_by(StaffAssignment.starts_at, StaffAssignment.id))


def _assigned(session: Session, unit_id: int, room: str, bed_id: int | None, role: CareRole,
              at: datetime) -> list[_Assigned]:
    return [_Assigned(*row) for row in _TIERS.rows(flushed_connection(session), {
        "unit_id": unit_id, "role": role.value, "at": at, "since": at - timedelta(hours=MAX_ASSIGNMENT_HOURS),
        "bed_id": bed_id if bed_id is not None else -1, "room": room})]


def _tiered(rows: list[_Assigned], room: str, bed_id: int | None) -> tuple[str, list[_Assigned]]:
    tiers = (("bed", [r for r in rows if bed_id is not None and r.bed_id == bed_id]),
             ("room", [r for r in rows if r.bed_id is None and room and r.room == room]),
             ("unit", [r for r in rows if r.bed_id is None and not r.room]))
    for tier, found in tiers:
        if found:
            return tier, found
    return "", []


def _active_people(rows: list[_Assigned], notes: list[str]) -> list[_Assigned]:
    kept = []
    for row in rows:
        if not row.active:
            notes.append(f"skipped {row.display_name}: inactive")
            continue
        kept.append(row)
    return kept


# The unit by code (the first, as patients.find_unit takes it), its site's time zone and, when asked,
# the bed: one statement where an alert's address used to cost four (unit, site, staffing unit, bed).
_PLACE = Prepared(select(Unit.id, Unit.code, Site.timezone, Bed.id).join(Site, Site.id == Unit.site_id)
                  .outerjoin(Bed, (Bed.unit_id == Unit.id) & (Bed.room == bindparam("room"))
                             & (Bed.bed == bindparam("bed")))
                  .where(Unit.code == bindparam("code")).order_by(Unit.id).limit(1))


def resolve_location(session: Session, *, unit_code: str, room: str, bed: str, role: CareRole,
                     at: datetime) -> LocationAnswer:
    """The people a bed's (or a unit's) care role reaches at ``at``, each with the reason."""
    answer = LocationAnswer()
    found = _PLACE.rows(flushed_connection(session), {"code": unit_code, "room": room if room and bed else None,
                                                      "bed": bed})
    if not found:
        answer.notes.append(f"no unit {unit_code!r} to find the {label(role)} of")
        return answer
    unit_id, code, tz, bed_id = found[0]
    where = place(code, room, bed)
    if room and bed and bed_id is None:
        answer.notes.append(f"no bed {room}-{bed} on unit {code}")
    tier, rows = _tiered(_assigned(session, unit_id, room, bed_id, role, at), room, bed_id)
    rows = _active_people(rows, answer.notes)
    for row in rows:
        scope = "" if tier in ("bed", "") or where == code else f" (assigned to {place(code, row.room)})"
        answer.recipients.append((row.person_id, f"{where} {label(role)}{scope}, {row.origin} for {window(row, tz)}"))
    if answer.recipients or role == CareRole.CHARGE_NURSE:
        if not answer.recipients:
            answer.notes.append(f"no charge nurse assigned to {code} at {at:%Y-%m-%d %H:%M} UTC")
        return answer
    charge = _active_people(_assigned(session, unit_id, "", None, CareRole.CHARGE_NURSE, at), answer.notes)
    for row in charge:
        answer.recipients.append((row.person_id, f"no {label(role)} assigned to {where}; charge nurse of {code}, "
                                                 f"{row.origin} for {window(row, tz)}"))
    if not charge:
        answer.notes.append(f"no {label(role)} assigned to {where} and no charge nurse on {code} "
                            f"at {at:%Y-%m-%d %H:%M} UTC")
    return answer
