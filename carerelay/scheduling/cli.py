"""`carerelay schedule …`: build, publish and change a schedule from a terminal.

A thin adapter like the routes: each command opens one unit of work and calls the scheduling
services. The CLI runs with database access, so it acts as the system (any department); ``--actor``
names who is typing, for the audit log and the change log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor, cli_actor
from carerelay.core.clock import Clock, SystemClock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError, Invalid
from carerelay.directory.models import Department, Person
from carerelay.scheduling import csv_import, lookup, service
from carerelay.scheduling.models import Assignment, AssignmentKind
from carerelay.scheduling.timeline import local_window

schedule_app = typer.Typer(no_args_is_help=True, help="Provider schedules and on-call lookup.")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ActorOpt = Annotated[str, typer.Option("--actor", help="Who is typing (recorded in the audit log)")]


def _open_database() -> Database:
    from carerelay.cli import _database, _require_current
    from carerelay.config import get_settings

    db = _database(get_settings())
    _require_current(db)
    return db


@contextmanager
def _work() -> Iterator[tuple[Session, Clock]]:
    """One unit of work; a refusal prints the field and the reason and exits 1 with nothing written."""
    db = _open_database()
    try:
        with db.unit_of_work() as session:
            yield session, SystemClock()
    except CarerelayError as exc:
        where = f"{exc.field}: " if exc.field else ""
        err.print(f"carerelay: {where}{exc.message}")
        raise typer.Exit(1) from None


def _actor(name: str) -> Actor:
    return cli_actor(name)


def _department(session: Session, code: str) -> Department:
    dept = session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
    if dept is None:
        raise Invalid(f"no department {code!r}", field="department")
    return dept


def _assignment(session: Session, code: str) -> Assignment:
    found = service.find_assignment(session=session, code=code)
    if found is None:
        raise Invalid(f"no assignment {code!r}", field="assignment")
    return found


def _person_id(session: Session, username: str | None) -> int | None:
    if username is None:
        return None
    pid = session.execute(select(Person.id).where(Person.username == username.lower())).scalar_one_or_none()
    if pid is None:
        raise Invalid(f"no person {username!r}", field="person")
    return pid


def _hhmm(text: str, field: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a time (HH:MM)", field=field) from None


@schedule_app.command("assignment-add")
def assignment_add(
    department: Annotated[str, typer.Argument(help="Department code, e.g. CARD")],
    code: Annotated[str, typer.Argument(help="Assignment code, e.g. CARD-CALL1-DAY")],
    name: Annotated[str, typer.Argument(help="Name shown to people, e.g. 'Cardiology On Call'")],
    start: Annotated[str, typer.Option(help="Local start HH:MM")],
    end: Annotated[str, typer.Option(help="Local end HH:MM (at or before start: next day; equal: 24 h)")],
    kind: Annotated[AssignmentKind, typer.Option(help="shift, call, admin or off")] = AssignmentKind.CALL,
    call_order: Annotated[int, typer.Option(min=1, max=99)] = 1,
    allow_overlap: Annotated[bool, typer.Option(help="May overlap the person's other slots")] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Create a shift template."""
    with _work() as (session, clock):
        created = service.create_assignment(
            session=session, clock=clock, actor=_actor(actor), department_id=_department(session, department).id,
            code=code, name=name, kind=kind.value, start_time=_hhmm(start, "start"), end_time=_hhmm(end, "end"),
            call_order=call_order, allow_overlap=allow_overlap)
        out.print(f"assignment {created.id} {created.code}: {created.start_time:%H:%M}–{created.end_time:%H:%M}, "
                  f"call order {created.call_order}")


@schedule_app.command("assignments")
def assignments(department: Annotated[str | None, typer.Option(help="Department code")] = None) -> None:
    """List shift templates."""
    with _work() as (session, _clock):
        dept_id = _department(session, department).id if department else None
        table = Table("id", "code", "name", "kind", "hours", "call order", "department")
        for a in service.list_assignments(session=session, department_id=dept_id):
            table.add_row(str(a.id), a.code, a.name, a.kind, f"{a.start_time:%H:%M}–{a.end_time:%H:%M}",
                          str(a.call_order), a.department.code)
        out.print(table)


@schedule_app.command("create")
def create(
    department: Annotated[str, typer.Argument(help="Department code")],
    starts_on: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")],
    ends_on: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD")],
    name: Annotated[str | None, typer.Option()] = None,
    actor: ActorOpt = "cli",
) -> None:
    """Create a draft schedule for a department and date range."""
    with _work() as (session, clock):
        schedule = service.create_schedule(session=session, clock=clock, actor=_actor(actor),
                                           department_id=_department(session, department).id,
                                           starts_on=_date(starts_on, "from"), ends_on=_date(ends_on, "to"),
                                           name=name)
        out.print(f"schedule {schedule.id} ({schedule.status}) {schedule.starts_on}..{schedule.ends_on}")


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a date (YYYY-MM-DD)", field=field) from None


@schedule_app.command("add")
def add(
    schedule_id: Annotated[int, typer.Argument()],
    on_date: Annotated[str, typer.Argument(help="Local date the shift starts, YYYY-MM-DD")],
    assignment: Annotated[str, typer.Argument(help="Assignment code")],
    person: Annotated[str | None, typer.Option(help="Username")] = None,
    placeholder: Annotated[str | None, typer.Option(help="Name for an unnamed slot")] = None,
    contact: Annotated[str | None, typer.Option(help="Number that reaches the placeholder")] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    actor: ActorOpt = "cli",
) -> None:
    """Add a slot."""
    with _work() as (session, clock):
        slot = service.add_slot(session=session, clock=clock, actor=_actor(actor), schedule_id=schedule_id,
                                assignment_id=_assignment(session, assignment).id,
                                on_date=_date(on_date, "date"),
                                fields=service.SlotFields(person_id=_person_id(session, person),
                                                          placeholder_name=placeholder, placeholder_contact=contact,
                                                          notes=notes))
        out.print(f"slot {slot.id}: {slot.assignment.code} {slot.on_date} "
                  f"{slot.starts_at:%Y-%m-%d %H:%M}Z–{slot.ends_at:%Y-%m-%d %H:%M}Z")


@schedule_app.command("change")
def change(
    slot_id: Annotated[int, typer.Argument()],
    person: Annotated[str | None, typer.Option(help="Username")] = None,
    placeholder: Annotated[str | None, typer.Option()] = None,
    contact: Annotated[str | None, typer.Option()] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    actor: ActorOpt = "cli",
) -> None:
    """Give a slot to someone else (or to a placeholder)."""
    with _work() as (session, clock):
        slot = service.update_slot(session=session, clock=clock, actor=_actor(actor), slot_id=slot_id,
                                   fields=service.SlotFields(person_id=_person_id(session, person),
                                                             placeholder_name=placeholder,
                                                             placeholder_contact=contact, notes=notes))
        out.print(f"slot {slot.id} now worked by {_who(slot.person, slot.placeholder_name)}")


def _who(person: Person | None, placeholder: str | None) -> str:
    return person.username if person is not None else f"{placeholder} (placeholder)"


@schedule_app.command("remove")
def remove(slot_id: Annotated[int, typer.Argument()], actor: ActorOpt = "cli") -> None:
    """Remove a slot."""
    with _work() as (session, clock):
        service.remove_slot(session=session, clock=clock, actor=_actor(actor), slot_id=slot_id)
        out.print(f"slot {slot_id} removed")


@schedule_app.command("publish")
def publish(schedule_id: Annotated[int, typer.Argument()], actor: ActorOpt = "cli") -> None:
    """Publish: the schedule starts to count for lookup, routing and exports; a new version is cut."""
    with _work() as (session, clock):
        version = service.publish_schedule(session=session, clock=clock, actor=_actor(actor),
                                           schedule_id=schedule_id)
        out.print(f"schedule {schedule_id} published as version {version.version} ({len(version.slots)} slots)")


@schedule_app.command("unpublish")
def unpublish(schedule_id: Annotated[int, typer.Argument()], actor: ActorOpt = "cli") -> None:
    """Withdraw a published schedule: lookup and exports stop counting it until it is published again."""
    with _work() as (session, clock):
        service.unpublish_schedule(session=session, clock=clock, actor=_actor(actor), schedule_id=schedule_id)
        out.print(f"schedule {schedule_id} is a draft again")


@schedule_app.command("show")
def show(schedule_id: Annotated[int, typer.Argument()]) -> None:
    """Print a schedule's slots in local time."""
    with _work() as (session, _clock):
        schedule = service.get_schedule(session=session, schedule_id=schedule_id)
        tz = schedule.department.site.timezone
        table = Table("slot", "date", "assignment", "order", "who", "local hours", "notes",
                      title=f"{schedule.name} — {schedule.status}, version {schedule.version} ({tz})")
        for slot in service.list_slots(session=session, schedule_id=schedule_id):
            table.add_row(str(slot.id), str(slot.on_date), slot.assignment.code, str(slot.assignment.call_order),
                          _who(slot.person, slot.placeholder_name), local_window(slot.starts_at, slot.ends_at, tz),
                          slot.notes or "")
        out.print(table)


@schedule_app.command("changes")
def changes(
    schedule_id: Annotated[int, typer.Argument()],
    since_version: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """The change log of a published schedule (who, when, what)."""
    with _work() as (session, _clock):
        table = Table("at (UTC)", "who", "action", "slot", "after version")
        for c in service.list_changes(session=session, schedule_id=schedule_id, since_version=since_version):
            table.add_row(f"{c.at:%Y-%m-%d %H:%M:%S}", c.actor_name, c.action, str(c.slot_id), str(c.after_version))
        out.print(table)


@schedule_app.command("import")
def import_csv(
    schedule_id: Annotated[int, typer.Argument()],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    partial: Annotated[bool, typer.Option(help="Import the good rows even if some rows fail")] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Import slots from CSV (date, assignment, person[, placeholder, contact, notes, start, end])."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        err.print(f"carerelay: {file}: not UTF-8 text")
        raise typer.Exit(1) from None
    rows = max(0, len(text.splitlines()) - 1)
    with _work() as (session, clock), Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                                               TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("rows", total=rows)
        report = csv_import.import_slots_csv(session=session, clock=clock, actor=_actor(actor),
                                             schedule_id=schedule_id, text=text, partial=partial,
                                             on_row=lambda n: progress.update(task, completed=n))
    if report.errors:
        table = Table("row", "field", "problem", title=f"{len(report.errors)} rows refused")
        for e in report.errors:
            table.add_row(str(e.row), e.field, e.message)
        err.print(table)
    if report.errors and not partial:
        err.print(f"carerelay: nothing imported ({len(report.errors)} errors); fix the file or use --partial")
        raise typer.Exit(1)
    out.print(f"imported {report.imported} of {report.rows} rows into schedule {schedule_id}")
    if report.errors:
        raise typer.Exit(1)


def _print_on_call(items: list[lookup.OnCall]) -> None:
    if not items:
        out.print("nobody on call")
    for item in items:
        contact = f" [{item.contact}]" if item.contact else ""
        out.print(f"{item.call_order}. {item.name}{contact} — {item.reason}")


@schedule_app.command("who")
def who(
    department: Annotated[str | None, typer.Option(help="Department code")] = None,
    assignment: Annotated[str | None, typer.Option(help="Assignment code")] = None,
    at: Annotated[str | None, typer.Option(help="Instant with offset, e.g. 2026-11-24T13:00:00Z; default now")]
    = None,
) -> None:
    """Who works a department or an assignment at an instant, in call order, with the reason."""
    with _work() as (session, clock):
        instant = _instant(at) if at else clock.now()
        items = lookup.who_is_on(session=session, at=instant,
                                 department_id=_department(session, department).id if department else None,
                                 assignment_id=_assignment(session, assignment).id if assignment else None)
        _print_on_call(items)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text!r} is not an ISO 8601 instant", field="at") from None
    if value.tzinfo is None:
        raise Invalid(f"{text!r} has no offset; add Z or +HH:MM", field="at")
    return value.astimezone(UTC)


@schedule_app.command("now")
def now() -> None:
    """On call now, and next, in every department (the operator's view)."""
    with _work() as (session, clock):
        for coverage in lookup.on_call_now(session=session, at=clock.now()):
            out.print(f"[bold]{coverage.department_code}[/bold]")
            _print_on_call(coverage.now)
            for item in coverage.next:
                out.print(f"   next: {item.name} — {item.reason}")


@schedule_app.command("sync")
def sync_now(
    source: Annotated[int | None, typer.Option(help="Only this sync source")] = None,
    due: Annotated[bool, typer.Option(help="Only sources not pulled in the last 15 minutes (as the worker does)")]
    = False,
) -> None:
    """Pull third-party schedulers (the next 48 h); each source in its own unit of work."""
    import httpx2

    from carerelay.scheduling.sync import engine

    failed = False
    with httpx2.Client(timeout=20) as http:
        if due:  # what the worker in each node does every minute: vendors asked with no transaction open
            db = _open_database()
            runs = engine.sync_due(db=db, clock=SystemClock(), http=http)
        else:
            with _work() as (session, clock):
                if source is not None:
                    ids = [engine.get_source(session=session, source_id=source).id]
                else:
                    ids = [s.id for s in engine.list_sources(session=session) if s.active]
            runs = []
            for source_id in ids:
                with _work() as (session, clock):
                    runs.append(engine.run_sync(session=session, clock=clock, source_id=source_id, http=http))
    for run in runs:
        out.print(f"source {run.source_id}: {run.status}, {run.created} created, {run.updated} updated, "
                  f"{run.removed} removed, {len(run.unmapped)} unmapped, {len(run.problems)} refused"
                  + (f" — {run.error}" if run.error else ""))
        for item in run.unmapped:
            out.print(f"   unmapped {item['kind']} {item['id']} ({item['name']})")
        failed = failed or run.status == "failed"
    if failed:
        raise typer.Exit(1)
