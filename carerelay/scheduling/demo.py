"""The demo hospital's schedules: a published month for CARD, HOSP and NEURO around "today".

Built through the scheduling services (validated and audited like a scheduler's work), relative to
the clock so the demo always has someone on call now. Found by natural key first: loading again
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.directory.models import Department
from carerelay.scheduling import service
from carerelay.scheduling.models import Assignment

DAY, NIGHT = (time(7), time(19)), (time(19), time(7))
FULL_DAY = (time(7), time(7))

ASSIGNMENTS = [
    # department, code, name, kind, (start, end), call order
    ("CARD", "CARD-CALL1-DAY", "Cardiology On Call", "call", DAY, 1),
    ("CARD", "CARD-CALL1-NIGHT", "Cardiology On Call", "call", NIGHT, 1),
    ("CARD", "CARD-CALL2-DAY", "Cardiology On Call", "call", DAY, 2),
    ("CARD", "CARD-CALL2-NIGHT", "Cardiology On Call", "call", NIGHT, 2),
    ("HOSP", "HOSP-DAY", "Hospitalist", "shift", DAY, 1),
    ("HOSP", "HOSP-NIGHT", "Hospitalist", "shift", NIGHT, 1),
    ("NEURO", "NEURO-CALL", "Neurology On Call", "call", FULL_DAY, 1),
]

ROTATIONS = {
    # department: (people in rotation, {assignment code: offset into the rotation})
    "CARD": (["aokafor", "dreyes", "pnatarajan", "tlindqvist", "jwilson", "ecole"],
             {"CARD-CALL1-DAY": 0, "CARD-CALL2-DAY": 1, "CARD-CALL1-NIGHT": 2, "CARD-CALL2-NIGHT": 3}),
    "HOSP": (["ghouse", "lcuddy", "hpark", "mbell", "smarchetti", "ofitzgerald", "msantos"],
             {"HOSP-DAY": 0, "HOSP-NIGHT": 3}),
    "NEURO": (["ihalvorsen", "sadeyemi", "lkowalski", "rortiz", "jweiss"], {"NEURO-CALL": 0}),
}


def demo_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def load_demo_schedules(
    *, session: Session, clock: Clock, actor: Actor, people: dict[str, int], count: Callable[[str], None]
) -> None:
    depts = {d.code: d for d in session.execute(select(Department)).scalars()}
    assignments: dict[str, Assignment] = {}
    for dept_code, code, name, kind, (start, end), call_order in ASSIGNMENTS:
        found = service.find_assignment(session=session, code=code)
        if found is None:
            found = service.create_assignment(session=session, clock=clock, actor=actor,
                                              department_id=depts[dept_code].id, code=code, name=name, kind=kind,
                                              start_time=start, end_time=end, call_order=call_order)
            count("assignments")
        assignments[code] = found
    first, last = demo_month(clock.now().date())
    for dept_code, (rotation, offsets) in ROTATIONS.items():
        dept_id = depts[dept_code].id
        if service.find_schedule(session=session, department_id=dept_id, on_date=first) is not None:
            continue
        # The night before the 1st runs into it: start the evening before with the overnight shifts,
        # unless an earlier schedule already covers that day, so the 1st's small hours have someone on call.
        day = first if service.find_schedule(session=session, department_id=dept_id,
                                             on_date=first - timedelta(days=1)) else first - timedelta(days=1)
        schedule = service.create_schedule(session=session, clock=clock, actor=actor, department_id=dept_id,
                                           starts_on=day, ends_on=last)
        count("schedules")
        while day <= last:
            n = (day - first).days
            for code, offset in offsets.items():
                if day < first and assignments[code].start_time < assignments[code].end_time:
                    continue  # the evening before the month: only the shifts that run into the 1st
                person = people[rotation[(n + offset) % len(rotation)]]
                service.add_slot(session=session, clock=clock, actor=actor, schedule_id=schedule.id,
                                 assignment_id=assignments[code].id, on_date=day,
                                 fields=service.SlotFields(person_id=person))
                count("slots")
            day += timedelta(days=1)
        service.publish_schedule(session=session, clock=clock, actor=actor, schedule_id=schedule.id)
