"""On-call lookup on the DST nights, through the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.scheduling import lookup, service
from tests.scheduling_factories import (
    ADMIN,
    make_assignment,
    make_department,
    make_person,
    make_schedule,
    make_slot,
)


def _build(db: Database, clock: FakeClock, tz: str, code: str, first: date, last: date) -> tuple[int, list[int]]:
    """A published schedule: day 07–19 and night 19–07, alternating two people."""
    with db.unit_of_work() as session:
        dept = make_department(session, clock, code=code, timezone=tz)
        a = make_person(session, clock, username=f"{code.lower()}a", department_id=dept.id)
        b = make_person(session, clock, username=f"{code.lower()}b", department_id=dept.id)
        day = make_assignment(session, clock, department_id=dept.id, code=f"{code}-DAY", start=time(7), end=time(19),
                              name="Day", kind="shift")
        night = make_assignment(session, clock, department_id=dept.id, code=f"{code}-NIGHT", start=time(19),
                                end=time(7), name="Night", kind="shift")
        schedule = make_schedule(session, clock, department_id=dept.id, starts_on=first, ends_on=last)
        d = first
        while d <= last:
            make_slot(session, clock, schedule=schedule, assignment=day, on_date=d, person_id=a.id)
            make_slot(session, clock, schedule=schedule, assignment=night, on_date=d, person_id=b.id)
            d += timedelta(days=1)
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        return dept.id, [a.id, b.id]


def _names_at(db: Database, dept_id: int, at: datetime) -> list[tuple[str, int | None]]:
    with db.unit_of_work() as session:
        return [(o.assignment_name, o.person_id) for o in lookup.who_is_on(session=session, at=at,
                                                                          department_id=dept_id)]


def test_new_york_fall_back_night_covers_both_one_thirties(db: Database, clock: FakeClock) -> None:
    dept, (day_person, night_person) = _build(db, clock, "America/New_York", "NYFB", date(2027, 11, 5),
                                              date(2027, 11, 8))
    first_0130 = datetime(2027, 11, 7, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second_0130 = datetime(2027, 11, 7, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert _names_at(db, dept, first_0130) == [("Night", night_person)]
    assert _names_at(db, dept, second_0130) == [("Night", night_person)]
    # The night ends at 07:00 EST = 12:00Z, not 11:00Z.
    assert _names_at(db, dept, datetime(2027, 11, 7, 11, 30, tzinfo=UTC)) == [("Night", night_person)]
    assert _names_at(db, dept, datetime(2027, 11, 7, 12, 0, tzinfo=UTC)) == [("Day", day_person)]


def test_new_york_spring_forward_night_is_eleven_hours(db: Database, clock: FakeClock) -> None:
    dept, (day_person, night_person) = _build(db, clock, "America/New_York", "NYSF", date(2027, 3, 12),
                                              date(2027, 3, 15))
    # 07:00 EDT on 14 March is 11:00Z: the night (from 00:00Z) is over an hour "early".
    assert _names_at(db, dept, datetime(2027, 3, 14, 10, 59, tzinfo=UTC)) == [("Night", night_person)]
    assert _names_at(db, dept, datetime(2027, 3, 14, 11, 0, tzinfo=UTC)) == [("Day", day_person)]
    with db.unit_of_work() as session:
        found = lookup.who_is_on(session=session, at=datetime(2027, 3, 14, 7, 0, tzinfo=UTC), department_id=dept)
        assert found[0].ends_at - found[0].starts_at == timedelta(hours=11)
        assert found[0].reason == "Night — slot 2027-03-13 19:00–2027-03-14 07:00 America/New_York, call order 1"


def test_berlin_fall_back_night_is_thirteen_hours(db: Database, clock: FakeClock) -> None:
    dept, (day_person, night_person) = _build(db, clock, "Europe/Berlin", "BERFB", date(2027, 10, 29),
                                              date(2027, 11, 1))
    with db.unit_of_work() as session:
        found = lookup.who_is_on(session=session, at=datetime(2027, 10, 31, 1, 30, tzinfo=UTC), department_id=dept)
    assert [o.person_id for o in found] == [night_person]
    assert found[0].starts_at == datetime(2027, 10, 30, 17, 0, tzinfo=UTC)
    assert found[0].ends_at == datetime(2027, 10, 31, 6, 0, tzinfo=UTC)
    assert _names_at(db, dept, datetime(2027, 10, 31, 6, 0, tzinfo=UTC)) == [("Day", day_person)]
