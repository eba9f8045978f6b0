"""Who is on: the answer routing needs, with the reason it will store beside every message.

Only published schedules count, and ``off`` slots never answer. A department-wide lookup returns
clinical coverage only (``shift`` and ``call``); naming an assignment returns whoever works it
(``admin`` included). Each lookup is one indexed range query: slots store their UTC span, and no
slot is longer than ``MAX_SLOT_HOURS``, so ``starts_at`` is bounded on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from carerelay.core.errors import Invalid
from carerelay.directory.models import Department, Person, Site
from carerelay.scheduling.models import MAX_SLOT_HOURS, Assignment, AssignmentKind, Schedule, ScheduleStatus, Slot
from carerelay.scheduling.timeline import local_window

CLINICAL = (AssignmentKind.SHIFT.value, AssignmentKind.CALL.value)
NEXT_HORIZON = timedelta(hours=48)


@dataclass(frozen=True)
class OnCall:
    slot_id: int
    assignment_id: int
    assignment_code: str
    assignment_name: str
    department_id: int
    department_code: str
    call_order: int
    person_id: int | None
    name: str
    contact: str | None
    starts_at: datetime
    ends_at: datetime
    timezone: str
    reason: str


def _base() -> Select[*tuple[Any, ...]]:
    return (
        select(Slot.id, Assignment.id, Assignment.code, Assignment.name, Department.id, Department.code,
               Assignment.call_order, Slot.person_id, Person.display_name, Slot.placeholder_name,
               Slot.placeholder_contact, Slot.starts_at, Slot.ends_at, Site.timezone)
        .join(Assignment, Slot.assignment_id == Assignment.id)
        .join(Schedule, Slot.schedule_id == Schedule.id)
        .join(Department, Slot.department_id == Department.id)
        .join(Site, Department.site_id == Site.id)
        .outerjoin(Person, Slot.person_id == Person.id)
        .where(Schedule.status == ScheduleStatus.PUBLISHED.value)
    )


def _on_call(row: Row[*tuple[Any, ...]]) -> OnCall:
    (slot_id, assignment_id, code, name, dept_id, dept_code, call_order, person_id, display, placeholder,
     contact, starts_at, ends_at, tz) = row
    who = display if person_id is not None and display else f"{placeholder} (placeholder)"
    reason = f"{name} — slot {local_window(starts_at, ends_at, tz)}, call order {call_order}"
    return OnCall(slot_id=slot_id, assignment_id=assignment_id, assignment_code=code, assignment_name=name,
                  department_id=dept_id, department_code=dept_code, call_order=call_order, person_id=person_id,
                  name=who, contact=contact, starts_at=starts_at, ends_at=ends_at, timezone=tz, reason=reason)


def _sorted(rows: list[OnCall]) -> list[OnCall]:
    return sorted(rows, key=lambda o: (o.department_code, o.call_order, o.assignment_code, o.starts_at, o.slot_id))


def who_is_on(
    *, session: Session, at: datetime, assignment_id: int | None = None, department_id: int | None = None
) -> list[OnCall]:
    """People (and placeholders) working at instant ``at``, in call order."""
    if (assignment_id is None) == (department_id is None):
        raise Invalid("name exactly one of assignment_id or department_id", field="assignment_id")
    if at.tzinfo is None:
        raise Invalid("the instant needs a time zone (UTC preferred)", field="at")
    query = _base().where(Slot.starts_at <= at, Slot.starts_at > at - timedelta(hours=MAX_SLOT_HOURS),
                          Slot.ends_at > at)
    if assignment_id is not None:
        query = query.where(Slot.assignment_id == assignment_id, Assignment.kind != AssignmentKind.OFF.value)
    else:
        query = query.where(Slot.department_id == department_id, Assignment.kind.in_(CLINICAL))
    return _sorted([_on_call(r) for r in session.execute(query)])


@dataclass(frozen=True)
class DepartmentCoverage:
    department_id: int
    department_code: str
    now: list[OnCall]
    next: list[OnCall]


def on_call_now(*, session: Session, at: datetime) -> list[DepartmentCoverage]:
    """Every department's clinical coverage at ``at`` and who takes over next (within 48 h).

    "Next" is, per department and call order, the slots with the earliest upcoming start: the
    hand-over an operator needs to know about, not every future shift.
    """
    current = session.execute(
        _base().where(Slot.starts_at <= at, Slot.starts_at > at - timedelta(hours=MAX_SLOT_HOURS),
                      Slot.ends_at > at, Assignment.kind.in_(CLINICAL))
    )
    upcoming = session.execute(
        _base().where(Slot.starts_at > at, Slot.starts_at <= at + NEXT_HORIZON, Assignment.kind.in_(CLINICAL))
        .order_by(Slot.starts_at, Slot.id)
    )
    now_by_dept: dict[int, list[OnCall]] = {}
    codes: dict[int, str] = {}
    for row in current:
        item = _on_call(row)
        now_by_dept.setdefault(item.department_id, []).append(item)
        codes[item.department_id] = item.department_code
    next_by_dept: dict[int, list[OnCall]] = {}
    first_start: dict[tuple[int, int], datetime] = {}
    for row in upcoming:
        item = _on_call(row)
        start = first_start.setdefault((item.department_id, item.call_order), item.starts_at)
        if item.starts_at == start:
            next_by_dept.setdefault(item.department_id, []).append(item)
            codes[item.department_id] = item.department_code
    return [
        DepartmentCoverage(department_id=d, department_code=codes[d], now=_sorted(now_by_dept.get(d, [])),
                           next=_sorted(next_by_dept.get(d, [])))
        for d in sorted(codes, key=lambda d: codes[d])
    ]


def person_slots(*, session: Session, person_id: int, since: datetime, days: int = 14) -> list[OnCall]:
    """A person's published slots that end after ``since`` and start within ``days``: "my schedule"."""
    query = _base().where(Slot.person_id == person_id, Slot.ends_at > since,
                          Slot.starts_at < since + timedelta(days=days), Assignment.kind != AssignmentKind.OFF.value)
    return sorted((_on_call(r) for r in session.execute(query)), key=lambda o: (o.starts_at, o.slot_id))
