"""CSV import of a schedule's slots: all or nothing unless ``partial``, with a row-by-row report.

Columns (header row required, any order): ``date`` (YYYY-MM-DD, the local date the shift starts),
``assignment`` (assignment code), ``person`` (username; empty for a placeholder), and optionally
``placeholder``, ``contact``, ``notes``, ``start`` and ``end``. ``start``/``end`` (HH:MM), when
present, are checked against the assignment's template so a file built for other hours is refused
rather than silently re-timed.

Every row runs in its own savepoint, so one bad row never leaves half a slot behind; without
``partial`` the whole import is one more savepoint that is rolled back when any row failed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import CarerelayError
from carerelay.directory.models import Person
from carerelay.scheduling import service
from carerelay.scheduling.models import Assignment, Schedule, SlotSource

REQUIRED = ("date", "assignment", "person")
OPTIONAL = ("placeholder", "contact", "notes", "start", "end")
MAX_ROWS = 50_000


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class RowProblem(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RowProblem("date", f"{text!r} is not a date (YYYY-MM-DD)") from None


def _parse_time(column: str, text: str) -> time:
    try:
        value = time.fromisoformat(text)
    except ValueError:
        raise RowProblem(column, f"{text!r} is not a time (HH:MM)") from None
    return value


def _check_hours(assignment: Assignment, row: dict[str, str]) -> None:
    start_text, end_text = (row.get("start") or "").strip(), (row.get("end") or "").strip()
    start = _parse_time("start", start_text) if start_text else assignment.start_time
    end = _parse_time("end", end_text) if end_text else assignment.end_time
    crosses = assignment.end_time <= assignment.start_time
    if end_text and start_text and end < start and not crosses:
        raise RowProblem("end", f"end {end:%H:%M} is before start {start:%H:%M}, but {assignment.code} runs "
                                f"{assignment.start_time:%H:%M}–{assignment.end_time:%H:%M} the same day")
    if start != assignment.start_time:
        raise RowProblem("start", f"{start:%H:%M} does not match {assignment.code}'s start "
                                  f"{assignment.start_time:%H:%M}")
    if end != assignment.end_time:
        raise RowProblem("end", f"{end:%H:%M} does not match {assignment.code}'s end {assignment.end_time:%H:%M}")


def _header_errors(fieldnames: Sequence[str] | None) -> list[RowError]:
    if not fieldnames:
        return [RowError(1, "header", "the file is empty: expected a header row "
                                      f"({', '.join(REQUIRED)}, optional {', '.join(OPTIONAL)})")]
    names = [n.strip().lower() for n in fieldnames]
    errors = [RowError(1, n or "header", f"unknown column {n!r}") for n in names if n not in REQUIRED + OPTIONAL]
    errors += [RowError(1, n, f"missing column {n!r}") for n in REQUIRED if n not in names]
    errors += [RowError(1, n, f"column {n!r} appears twice") for n in sorted(set(names)) if names.count(n) > 1]
    return errors


def import_slots_csv(
    *, session: Session, clock: Clock, actor: Actor, schedule_id: int, text: str, partial: bool = False,
    on_row: Callable[[int], None] | None = None,
) -> ImportReport:
    schedule = service.get_schedule(session=session, schedule_id=schedule_id)
    service.check_may_edit(session=session, actor=actor, department_id=schedule.department_id)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    report = ImportReport(errors=_header_errors(reader.fieldnames))
    if report.errors:
        return report
    reader.fieldnames = [n.strip().lower() for n in reader.fieldnames or []]
    rows = list(reader)
    report.rows = len(rows)
    if len(rows) > MAX_ROWS:
        report.errors.append(RowError(1, "file", f"{len(rows)} rows; at most {MAX_ROWS} per import"))
        return report
    whole = session.begin_nested()
    assignments: dict[str, Assignment | None] = {}
    people: dict[str, Person | None] = {}
    for index, row in enumerate(rows, start=2):
        try:
            with session.begin_nested():
                _import_row(session, clock, actor, schedule, row, assignments, people)
            report.imported += 1
        except RowProblem as problem:
            report.errors.append(RowError(index, problem.column, problem.message))
        except CarerelayError as exc:
            report.errors.append(RowError(index, _column_for(exc.field), exc.message))
        if on_row is not None:
            on_row(index - 1)
    if report.errors and not partial:
        whole.rollback()
        report.imported = 0
        return report
    whole.commit()
    if report.imported:
        audit.record(session=session, clock=clock, actor=actor, action="scheduling.import_slots",
                     object_type="schedule", object_id=schedule_id,
                     detail={"rows": report.rows, "imported": report.imported, "errors": len(report.errors),
                             "partial": partial})
    return report


FIELD_TO_COLUMN = {"on_date": "date", "assignment_id": "assignment", "person_id": "person",
                   "placeholder_name": "placeholder", "placeholder_contact": "contact",
                   "start_time": "start", "end_time": "end"}


def _column_for(field_name: str | None) -> str:
    return FIELD_TO_COLUMN.get(field_name or "", field_name or "row")


def _import_row(
    session: Session, clock: Clock, actor: Actor, schedule: Schedule, row: dict[str, str],
    assignments: dict[str, Assignment | None], people: dict[str, Person | None],
) -> None:
    if None in row:
        raise RowProblem("row", "more values than columns")
    on_date = _parse_date((row.get("date") or "").strip())
    code = (row.get("assignment") or "").strip()
    if code not in assignments:
        assignments[code] = service.find_assignment(session=session, code=code)
    assignment = assignments[code]
    if assignment is None:
        raise RowProblem("assignment", f"unknown assignment {code!r}")
    _check_hours(assignment, row)
    username = (row.get("person") or "").strip().lower()
    person_id = None
    if username:
        if username not in people:
            people[username] = session.execute(select(Person).where(Person.username == username)).scalar_one_or_none()
        person = people[username]
        if person is None:
            raise RowProblem("person", f"unknown person {username!r}")
        person_id = person.id
    fields = service.SlotFields(person_id=person_id, placeholder_name=(row.get("placeholder") or "").strip() or None,
                                placeholder_contact=(row.get("contact") or "").strip() or None,
                                notes=(row.get("notes") or "").strip() or None)
    service.build_slot(session=session, clock=clock, actor=actor, schedule=schedule, assignment=assignment,
                       on_date=on_date, fields=fields, source=SlotSource.CSV.value)
