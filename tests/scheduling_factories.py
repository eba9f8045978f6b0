"""make_* helpers for scheduling tests: departments, assignments and schedules with little typing."""

from __future__ import annotations

from datetime import date, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor, cli_actor
from carerelay.core.clock import Clock
from carerelay.directory import service as directory
from carerelay.directory.models import Department, Person, Site
from carerelay.scheduling import service
from carerelay.scheduling.models import Assignment, Schedule, Slot

ADMIN = cli_actor("test")


def department(session: Session, code: str) -> Department:
    return session.execute(select(Department).where(Department.code == code)).scalar_one()


def person(session: Session, username: str) -> Person:
    return session.execute(select(Person).where(Person.username == username)).scalar_one()


def make_department(session: Session, clock: Clock, *, code: str, timezone: str) -> Department:
    site = session.execute(select(Site).where(Site.timezone == timezone)).scalars().first()
    if site is None:
        site = directory.create_site(session=session, clock=clock, actor=ADMIN, code=f"S-{code}", name=code,
                                     timezone=timezone)
    return directory.create_department(session=session, clock=clock, actor=ADMIN, site_id=site.id, code=code,
                                       name=f"Department {code}")


def make_person(session: Session, clock: Clock, *, username: str, department_id: int) -> Person:
    return directory.create_person(session=session, clock=clock, actor=ADMIN,
                                   data={"username": username, "given_name": username.capitalize(),
                                         "family_name": "Test", "profession": "physician",
                                         "department_id": department_id, "roles": ["clinician"]})


def make_assignment(
    session: Session, clock: Clock, *, department_id: int, code: str, start: time, end: time,
    name: str | None = None, kind: str = "call", call_order: int = 1, allow_overlap: bool = False,
    actor: Actor = ADMIN,
) -> Assignment:
    return service.create_assignment(session=session, clock=clock, actor=actor, department_id=department_id,
                                     code=code, name=name or code, kind=kind, start_time=start, end_time=end,
                                     call_order=call_order, allow_overlap=allow_overlap)


def make_schedule(
    session: Session, clock: Clock, *, department_id: int, starts_on: date, ends_on: date, actor: Actor = ADMIN
) -> Schedule:
    return service.create_schedule(session=session, clock=clock, actor=actor, department_id=department_id,
                                   starts_on=starts_on, ends_on=ends_on)


def make_slot(
    session: Session, clock: Clock, *, schedule: Schedule, assignment: Assignment, on_date: date,
    person_id: int | None = None, placeholder: str | None = None, contact: str | None = None,
    actor: Actor = ADMIN,
) -> Slot:
    return service.add_slot(session=session, clock=clock, actor=actor, schedule_id=schedule.id,
                            assignment_id=assignment.id, on_date=on_date,
                            fields=service.SlotFields(person_id=person_id, placeholder_name=placeholder,
                                                      placeholder_contact=contact))
