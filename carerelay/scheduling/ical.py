"""iCalendar (RFC 5545) feeds of published slots, per person and per assignment.

Events carry UTC DTSTART/DTEND (the stored instants), so a calendar client shows them correctly in
any zone and across DST without our VTIMEZONE guesswork. The UID is stable per slot so a client
updates an event when a swap changes who works it, and SEQUENCE is the slot's revision.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.errors import NotFound
from carerelay.directory.models import Person
from carerelay.scheduling.models import Assignment, AssignmentKind, Schedule, ScheduleStatus, Slot
from carerelay.scheduling.timeline import local_window

PAST = timedelta(days=31)
FUTURE = timedelta(days=400)


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//carerelay//scheduling//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    return cal


def _slots(session: Session, now: datetime, *, person_id: int | None = None,
           assignment_id: int | None = None) -> list[Slot]:
    query = (select(Slot).join(Schedule, Slot.schedule_id == Schedule.id)
             .join(Assignment, Slot.assignment_id == Assignment.id)
             .where(Schedule.status == ScheduleStatus.PUBLISHED.value, Assignment.kind != AssignmentKind.OFF.value,
                    Slot.starts_at >= now - PAST, Slot.starts_at < now + FUTURE)
             .order_by(Slot.starts_at, Slot.id))
    if person_id is not None:
        query = query.where(Slot.person_id == person_id)
    if assignment_id is not None:
        query = query.where(Slot.assignment_id == assignment_id)
    return list(session.execute(query).scalars())


def _event(slot: Slot, now: datetime, *, summary: str) -> Event:
    tz = slot.assignment.department.site.timezone
    event = Event()
    event.add("uid", f"slot-{slot.id}@carerelay")
    event.add("dtstamp", now)
    event.add("dtstart", slot.starts_at)
    event.add("dtend", slot.ends_at)
    event.add("summary", summary)
    event.add("sequence", slot.revision)
    event.add("last-modified", slot.updated_at)
    event.add("description", f"{slot.assignment.name}, call order {slot.assignment.call_order}: "
                             f"{local_window(slot.starts_at, slot.ends_at, tz)}" +
              (f"\n{slot.notes}" if slot.notes else ""))
    event.add("location", slot.assignment.department.name)
    return event


def person_feed(*, session: Session, now: datetime, person_id: int) -> bytes:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    cal = _calendar(f"{person.display_name} — schedule")
    for slot in _slots(session, now, person_id=person_id):
        cal.add_component(_event(slot, now, summary=slot.assignment.name))
    data: bytes = cal.to_ical()
    return data


def assignment_feed(*, session: Session, now: datetime, assignment_id: int) -> bytes:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}")
    cal = _calendar(f"{assignment.name} ({assignment.code})")
    for slot in _slots(session, now, assignment_id=assignment_id):
        who = (slot.person.display_name if slot.person is not None
               else f"{slot.placeholder_name} (placeholder, {slot.placeholder_contact})")
        cal.add_component(_event(slot, now, summary=f"{assignment.name}: {who}"))
    data: bytes = cal.to_ical()
    return data
