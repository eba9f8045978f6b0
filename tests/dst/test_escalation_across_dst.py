"""Escalation and routing rules on the DST nights (America/New_York), through the database.

Waits are real minutes (timers are UTC instants), and every step resolves the role again against slots
whose UTC spans already follow the local-time rule (docs/subsystems/scheduling-dst.md): a step due
inside the skipped or the repeated hour, and a shift change at 07:00 local on the change night, reach
the right person. A hold-until rule releases at the wall-clock time the person asked for.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from carerelay.alerts import service as alerts
from carerelay.alerts.models import AlertEvent
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.escalation import service as escalation
from carerelay.jobs import service as jobs
from carerelay.routing import service as routing
from carerelay.scheduling import service as scheduling
from tests.scheduling_factories import ADMIN, make_assignment, make_department, make_person, make_schedule, make_slot

NEW_YORK = ZoneInfo("America/New_York")


def _hospital(db: Database, clock: FakeClock, code: str, first: date, last: date, wait: float) -> tuple[int, int]:
    """Day 07–19 (person A) and night 19–07 (person B), both named "<code> Hospitalist", published; a
    department policy: the address, then the role again after ``wait`` minutes."""
    with db.unit_of_work() as session:
        dept = make_department(session, clock, code=code, timezone="America/New_York")
        a = make_person(session, clock, username=f"{code.lower()}day", department_id=dept.id)
        b = make_person(session, clock, username=f"{code.lower()}night", department_id=dept.id)
        name = f"{code} Hospitalist"
        day = make_assignment(session, clock, department_id=dept.id, code=f"{code}-DAY", start=time(7), end=time(19),
                              name=name, kind="shift")
        night = make_assignment(session, clock, department_id=dept.id, code=f"{code}-NIGHT", start=time(19),
                                end=time(7), name=name, kind="shift")
        schedule = make_schedule(session, clock, department_id=dept.id, starts_on=first, ends_on=last)
        d = first
        while d <= last:
            make_slot(session, clock, schedule=schedule, assignment=day, on_date=d, person_id=a.id)
            make_slot(session, clock, schedule=schedule, assignment=night, on_date=d, person_id=b.id)
            d += timedelta(days=1)
        scheduling.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        escalation.create_policy(session=session, clock=clock, actor=ADMIN, data={
            "name": f"{code} policy", "alert_kind": None, "department_id": dept.id, "priority": None,
            "steps": [{"address": "target:", "wait_minutes": wait}, {"address": f"role:{name}", "wait_minutes": 60}],
            "repeat": 0, "fallback_address": "group:OPERATORS"})
        return a.id, b.id


def _raise(db: Database, clock: FakeClock, address: str, priority: str = "urgent") -> int:
    with db.unit_of_work() as session:
        alert = alerts.raise_alert(session=session, clock=clock, actor=cli_actor(), kind="dst", priority=priority,
                                   title="DST night", body="", address=address, source="test")
        return alert.id


def _notified(db: Database, alert_id: int) -> list[tuple[int | None, datetime, str]]:
    with db.unit_of_work() as session:
        rows = session.execute(select(AlertEvent).where(AlertEvent.alert_id == alert_id, AlertEvent.kind == "notified")
                               .order_by(AlertEvent.id)).scalars()
        return [(e.person_id, e.at, str(e.detail["reason"])) for e in rows]


def _at(db: Database, clock: FakeClock, instant: datetime) -> None:
    clock.set(instant)
    jobs.fire_due(db=db, clock=clock)


def test_spring_forward_step_due_in_the_skipped_hour_and_the_shift_change(db: Database, clock: FakeClock) -> None:
    day, night = _hospital(db, clock, "NYSPR", date(2027, 3, 12), date(2027, 3, 15), wait=10)
    clock.set(datetime(2027, 3, 14, 6, 55, tzinfo=UTC))  # 01:55 EST; "02:05" never happens that night
    in_gap = _raise(db, clock, "role:NYSPR Hospitalist")
    _at(db, clock, datetime(2027, 3, 14, 7, 4, 59, tzinfo=UTC))
    assert len(_notified(db, in_gap)) == 1
    _at(db, clock, datetime(2027, 3, 14, 7, 5, tzinfo=UTC))  # 03:05 EDT: exactly ten minutes later
    [(first, _, _), (second, at, reason)] = _notified(db, in_gap)
    assert (first, second) == (night, night) and at == datetime(2027, 3, 14, 7, 5, tzinfo=UTC)
    assert "not acknowledged within 10 minutes" in reason and "19:00" in reason

    # The night ends at 07:00 EDT = 11:00Z (an 11-hour night), not 12:00Z.
    clock.set(datetime(2027, 3, 14, 10, 58, tzinfo=UTC))
    handover = _raise(db, clock, "role:NYSPR Hospitalist")
    _at(db, clock, datetime(2027, 3, 14, 11, 8, tzinfo=UTC))
    assert [p for p, _, _ in _notified(db, handover)] == [night, day]
    assert "07:00–19:00" in _notified(db, handover)[1][2]


def test_fall_back_step_due_in_the_repeated_hour_and_the_shift_change(db: Database, clock: FakeClock) -> None:
    day, night = _hospital(db, clock, "NYFAL", date(2027, 11, 5), date(2027, 11, 8), wait=20)
    clock.set(datetime(2027, 11, 7, 5, 50, tzinfo=UTC))  # 01:50 EDT; the step is due at the second 01:10 (EST)
    repeated = _raise(db, clock, "role:NYFAL Hospitalist")
    _at(db, clock, datetime(2027, 11, 7, 6, 9, 59, tzinfo=UTC))
    assert len(_notified(db, repeated)) == 1
    _at(db, clock, datetime(2027, 11, 7, 6, 10, tzinfo=UTC))
    assert [(p, at) for p, at, _ in _notified(db, repeated)][1] == (night, datetime(2027, 11, 7, 6, 10, tzinfo=UTC))

    # 07:03 in daylight time would be 11:03Z; the night really ends at 07:00 EST = 12:00Z (a 13-hour night).
    clock.set(datetime(2027, 11, 7, 10, 43, tzinfo=UTC))
    still_night = _raise(db, clock, "role:NYFAL Hospitalist")
    _at(db, clock, datetime(2027, 11, 7, 11, 3, tzinfo=UTC))
    assert [p for p, _, _ in _notified(db, still_night)] == [night, night]
    clock.set(datetime(2027, 11, 7, 11, 58, tzinfo=UTC))
    handover = _raise(db, clock, "role:NYFAL Hospitalist")
    _at(db, clock, datetime(2027, 11, 7, 12, 18, tzinfo=UTC))
    assert [p for p, _, _ in _notified(db, handover)] == [night, day]


def _held_person(db: Database, clock: FakeClock, code: str, hold_until: str) -> int:
    with db.unit_of_work() as session:
        dept = make_department(session, clock, code=code, timezone="America/New_York")
        who = make_person(session, clock, username=f"{code.lower()}held", department_id=dept.id)
        actor = cli_actor()
        routing.create_rule(session=session, clock=clock, actor=actor, person_id=who.id, data={
            "rank": 100, "priorities": ["routine"], "sender_types": [], "window_start": "21:00", "window_end": "07:00",
            "action": "hold", "hold_until": hold_until, "forward_to": None, "contact_kind": None,
            "after_minutes": None, "on_duty": None})
        return who.id


def _released_at(db: Database, clock: FakeClock, person_id: int, raised: datetime, expected: datetime) -> None:
    clock.set(raised)
    alert_id = _raise(db, clock, f"person:{person_id}", priority="routine")
    assert _notified(db, alert_id) == []
    _at(db, clock, expected - timedelta(seconds=1))
    assert _notified(db, alert_id) == []
    _at(db, clock, expected)
    [(who, at, reason)] = _notified(db, alert_id)
    assert (who, at) == (person_id, expected)
    assert reason == f"held by their rule until {expected.astimezone(NEW_YORK):%H:%M} America/New_York"


def test_hold_until_seven_releases_at_local_seven_on_both_change_nights(db: Database, clock: FakeClock) -> None:
    person = _held_person(db, clock, "NYHOLD", "07:00")
    # Spring forward: 01:30 EST → 07:00 EDT = 11:00Z.
    _released_at(db, clock, person, datetime(2027, 3, 14, 6, 30, tzinfo=UTC), datetime(2027, 3, 14, 11, 0, tzinfo=UTC))
    # Fall back: the second 01:30 (EST) → 07:00 EST = 12:00Z.
    _released_at(db, clock, person, datetime(2027, 11, 7, 6, 30, tzinfo=UTC), datetime(2027, 11, 7, 12, 0, tzinfo=UTC))


def test_hold_until_a_skipped_or_repeated_time(db: Database, clock: FakeClock) -> None:
    skipped = _held_person(db, clock, "NYSKIP", "02:30")
    # 02:30 does not exist on 14 March: it is read as 02:30 EST, i.e. 03:30 EDT, after the gap.
    _released_at(db, clock, skipped, datetime(2027, 3, 14, 6, 0, tzinfo=UTC), datetime(2027, 3, 14, 7, 30, tzinfo=UTC))
    repeated = _held_person(db, clock, "NYREP", "01:30")
    # At 01:15 EST (the second pass through the hour) the next 01:30 is a quarter of an hour away, not tomorrow.
    _released_at(db, clock, repeated, datetime(2027, 11, 7, 6, 15, tzinfo=UTC),
                 datetime(2027, 11, 7, 6, 30, tzinfo=UTC))
