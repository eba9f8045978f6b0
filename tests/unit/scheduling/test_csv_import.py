"""CSV import: every bad-input case names its row and field, and nothing is half-imported."""

from __future__ import annotations

from datetime import date, time

import pytest
from sqlalchemy import func, select

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.scheduling.csv_import import RowError, import_slots_csv
from carerelay.scheduling.models import Slot
from tests.scheduling_factories import ADMIN, make_assignment, make_department, make_person, make_schedule

HEADER = "date,assignment,person,placeholder,contact,notes,start,end\n"


def _setup(db: Database, clock: FakeClock) -> int:
    with db.unit_of_work() as session:
        dept = make_department(session, clock, code="CSVNY", timezone="America/New_York")
        for name in ("csva", "csvb"):
            make_person(session, clock, username=name, department_id=dept.id)
        make_assignment(session, clock, department_id=dept.id, code="CSV-DAY", start=time(7), end=time(19))
        make_assignment(session, clock, department_id=dept.id, code="CSV-NIGHT", start=time(19), end=time(7))
        make_assignment(session, clock, department_id=dept.id, code="CSV-EARLY", start=time(2, 30), end=time(9))
        return make_schedule(session, clock, department_id=dept.id, starts_on=date(2027, 3, 1),
                             ends_on=date(2027, 3, 31)).id


def _import(db: Database, clock: FakeClock, schedule_id: int, text: str, partial: bool = False,
            ) -> tuple[int, list[RowError], int]:
    seen: list[int] = []
    with db.unit_of_work() as session:
        report = import_slots_csv(session=session, clock=clock, actor=ADMIN, schedule_id=schedule_id, text=text,
                                  partial=partial, on_row=seen.append)
        slots = session.execute(select(func.count()).select_from(Slot).where(Slot.schedule_id == schedule_id))
        count = slots.scalar_one()
    assert seen == list(range(1, report.rows + 1))
    return report.imported, report.errors, count


@pytest.mark.parametrize(("row", "field", "words"), [
    ("2027-03-02,CSV-DAY,nobody,,,,,", "person", "unknown person 'nobody'"),
    ("2027-03-02,CSV-LATE,csva,,,,,", "assignment", "unknown assignment 'CSV-LATE'"),
    ("2027-03-02,CSV-DAY,csva,,,,19:00,07:00", "end", "end 07:00 is before start 19:00"),
    ("2027-03-02,CSV-DAY,csva,,,,08:00,", "start", "does not match CSV-DAY's start 07:00"),
    ("2027-03-14,CSV-EARLY,csva,,,,,", "start", "2027-03-14 02:30 does not exist in America/New_York"),
    ("2027-02-30,CSV-DAY,csva,,,,,", "date", "is not a date"),
    ("2027-04-01,CSV-DAY,csva,,,,,", "date", "outside schedule"),
    ("2027-03-02,CSV-DAY,,Locum,,,,", "contact", "needs a contact number"),
    ("2027-03-01,CSV-DAY,csvb,,,,,", "person", "overlapping time"),
])
def test_each_bad_row_names_row_and_field_and_nothing_is_imported(
    db: Database, clock: FakeClock, row: str, field: str, words: str
) -> None:
    schedule_id = _setup(db, clock)
    text = HEADER + "2027-03-01,CSV-DAY,csvb,,,,07:00,19:00\n" + row + "\n2027-03-03,CSV-NIGHT,csva,,,,,\n"
    imported, errors, count = _import(db, clock, schedule_id, text)
    assert (imported, count) == (0, 0)
    assert len(errors) == 1
    assert (errors[0].row, errors[0].field) == (3, field)
    assert words in errors[0].message


def test_partial_keeps_the_good_rows(db: Database, clock: FakeClock) -> None:
    schedule_id = _setup(db, clock)
    text = (HEADER + "2027-03-01,CSV-DAY,csva,,,,,\n2027-03-02,CSV-DAY,ghost,,,,,\n"
            "2027-03-02,CSV-NIGHT,,Locum,555-0100,,,\n")
    imported, errors, count = _import(db, clock, schedule_id, text, partial=True)
    assert (imported, count) == (2, 2)
    assert [(e.row, e.field) for e in errors] == [(3, "person")]


@pytest.mark.parametrize(("header", "field"), [
    ("date,assignment,who\n", "who"),
    ("date,assignment\n", "person"),
    ("", "header"),
    ("date,assignment,person,person\n", "person"),
])
def test_a_wrong_header_is_refused_before_any_row(db: Database, clock: FakeClock, header: str, field: str) -> None:
    schedule_id = _setup(db, clock)
    text = header + ("2027-03-01,CSV-DAY,csva\n" if header else "")
    imported, errors, count = _import(db, clock, schedule_id, text)
    assert (imported, count) == (0, 0)
    assert errors[0].row == 1 and field in {e.field for e in errors}


def test_a_whole_month_imports(db: Database, clock: FakeClock) -> None:
    schedule_id = _setup(db, clock)
    rows = [f"2027-03-{d:02d},CSV-DAY,{'csva' if d % 2 else 'csvb'},,,,07:00,19:00" for d in range(1, 32)]
    rows += [f"2027-03-{d:02d},CSV-NIGHT,{'csvb' if d % 2 else 'csva'},,,,19:00,07:00" for d in range(1, 32)]
    imported, errors, count = _import(db, clock, schedule_id, HEADER + "\n".join(rows) + "\n")
    assert errors == [] and imported == count == 62
