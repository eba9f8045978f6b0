"""`carerelay staffing …`: import a file, pull feeds, see and make assignments from a terminal.

A thin adapter like the routes. The CLI runs with database access and acts as the system; ``--actor``
names who is typing, for the audit log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import cli_actor
from carerelay.core.clock import Clock, SystemClock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError, Invalid
from carerelay.directory.models import Person
from carerelay.staffing import feeds, file_import, runner, service
from carerelay.staffing.models import StaffingFeedRun

staffing_app = typer.Typer(no_args_is_help=True, help="Staff assignments: who cares for which bed this shift.")

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
def _work(db: Database | None = None) -> Iterator[tuple[Session, Clock]]:
    """One unit of work; a refusal prints the field and the reason and exits 1 with nothing written."""
    database = db or _open_database()
    try:
        with database.unit_of_work() as session:
            yield session, SystemClock()
    except CarerelayError as exc:
        where = f"{exc.field}: " if exc.field else ""
        err.print(f"carerelay: {where}{exc.message}")
        raise typer.Exit(1) from None


def _instant(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text!r} is not an ISO 8601 instant", field=field) from None
    if value.tzinfo is None:
        raise Invalid(f"{text!r} has no offset; add Z or +HH:MM", field=field)
    return value.astimezone(UTC)


def _print_run(run: StaffingFeedRun) -> None:
    if run.errors:
        table = Table("row", "field", "problem", title=f"{len(run.errors)} rows refused")
        for e in run.errors:
            table.add_row(str(e.get("row") or e.get("where")), str(e.get("field")), str(e.get("message")))
        err.print(table)
    for w in run.warnings:
        err.print(f"warning: {w.get('where')}: {w.get('message')}")
    if run.status == "rejected":
        err.print(f"carerelay: nothing applied ({len(run.errors)} errors); fix the file, or set the feed to "
                  "apply valid rows")
    elif run.status == "failed":
        err.print(f"carerelay: run failed: {run.error}")
    else:
        out.print(f"run {run.id} {run.status}: {run.applied} applied, {run.unchanged} unchanged, {run.ended} ended, "
                  f"{run.conflicts} conflicts, {len(run.errors)} refused of {run.rows} rows")


@staffing_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    feed: Annotated[int, typer.Option(help="Feed whose column map, id field and role map the file follows")],
    actor: ActorOpt = "cli",
) -> None:
    """Import a local CSV of assignments through a feed's settings (like one SFTP delivery)."""
    content = file.read_bytes()
    with _work() as (session, clock), Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                                               TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("rows", total=None)
        found = feeds.get_feed(session=session, feed_id=feed)
        report = file_import.import_file(session=session, clock=clock, feed=found, name=file.name, content=content,
                                         trigger=f"cli:{actor}",
                                         on_total=lambda n: progress.update(task, total=n),
                                         on_row=lambda n: progress.update(task, completed=n))
        run = report.run
    _print_run(run)
    if run.status in ("rejected", "failed") or run.errors:
        raise typer.Exit(1)


@staffing_app.command("pull")
def pull(
    feed: Annotated[int | None, typer.Option(help="Only this feed")] = None,
    due: Annotated[bool, typer.Option(help="Only feeds whose interval has come round (for cron)")] = False,
) -> None:
    """Fetch SFTP files or poll assignment systems now; each delivery in its own unit of work."""
    import httpx2

    db = _open_database()
    clock = SystemClock()
    with _work(db) as (session, _):
        if feed is not None:
            ids = [feeds.get_feed(session=session, feed_id=feed).id]
        else:
            ids = feeds.due_feeds(session=session, now=clock.now()) if due else [
                f.id for f in feeds.list_feeds(session=session) if f.active and f.kind != "push"]
    failed = False
    with httpx2.Client(timeout=runner.HTTP_TIMEOUT) as http:
        for feed_id in ids:
            if due:
                with _work(db) as (session, _):
                    if not feeds.claim_due(session=session, clock=clock, feed_id=feed_id):
                        continue
            try:
                outcome = asyncio.run(runner.run_feed(db, clock, feed_id, "cli", http))
            except CarerelayError as exc:
                err.print(f"carerelay: feed {feed_id}: {exc.message}")
                failed = True
                continue
            for name in outcome.skipped:
                out.print(f"feed {feed_id}: {name} already imported")
            with _work(db) as (session, _):
                for run_id in outcome.runs:
                    run = session.get_one(StaffingFeedRun, run_id)
                    out.print(f"feed {feed_id}: {run.file_name or 'poll'}")
                    _print_run(run)
                    failed = failed or run.status in ("failed", "rejected")
    if failed:
        raise typer.Exit(1)


@staffing_app.command("who")
def who(unit: Annotated[str, typer.Argument(help="Unit code, e.g. 4W")],
        at: Annotated[str | None, typer.Option(help="Instant with offset; default now")] = None) -> None:
    """Who is assigned on a unit, at each bed, and which occupied beds have no primary nurse."""
    with _work() as (session, clock):
        found = service.board(session=session, clock=clock, actor=cli_actor("cli"), unit=unit,
                              at=_instant(at, "at"))
        out.print(f"[bold]{found.unit.code}[/bold] {found.shift_label} ({found.settings.timezone})")
        for view in service.views(session, found.unit_level):
            out.print(f"  {view.role_label}: {view.person_name} — {view.origin}, {view.window}")
        table = Table("bed", "occupied", "assigned")
        for bed in found.beds:
            if not bed.assignments and not bed.occupied:
                continue
            names = "; ".join(f"{v.role_label} {v.person_name}" for v in service.views(session, bed.assignments))
            table.add_row(bed.label, "yes" if bed.occupied else "", names or "[red]no primary nurse[/red]"
                          if bed.primary_nurse_missing else names)
        out.print(table)


@staffing_app.command("assign")
def assign(
    unit: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Argument(help="primary_nurse, tech, charge_nurse… (or nurse, RN, PCT)")],
    username: Annotated[str, typer.Argument()],
    room: Annotated[str, typer.Option()] = "",
    bed: Annotated[str, typer.Option()] = "",
    start: Annotated[str | None, typer.Option(help="Instant with offset; default now")] = None,
    end: Annotated[str | None, typer.Option(help="Instant with offset; default the end of the shift")] = None,
    replace: Annotated[bool, typer.Option(help="End whoever holds the bed's primary nurse")] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Assign someone (as the charge nurse would on the board)."""
    with _work() as (session, clock):
        person = session.execute(select(Person).where(Person.username == username.lower())).scalar_one_or_none()
        if person is None:
            raise Invalid(f"no person {username!r}", field="person")
        change = service.assign(session=session, clock=clock, actor=cli_actor(actor), replace=replace,
                                item=service.AssignmentIn(unit=unit, role=role, person_id=person.id, room=room,
                                                          bed=bed, starts_at=_instant(start, "start"),
                                                          ends_at=_instant(end, "end")))
        if change.assignment is not None:
            view = service.views(session, [change.assignment])[0]
            out.print(f"{change.outcome}: {view.target} {view.role_label} {view.person_name} {view.window}"
                      + (f" ({change.message})" if change.message else ""))


@staffing_app.command("copy-shift")
def copy_shift(
    unit: Annotated[str, typer.Argument()],
    into: Annotated[str, typer.Option(help="next or current")] = "next",
    source: Annotated[str, typer.Option("--from", help="previous or same_yesterday")] = "previous",
    actor: ActorOpt = "cli",
) -> None:
    """Copy last shift's assignments into the next (or current) shift."""
    with _work() as (session, clock):
        report = service.copy_shift(session=session, clock=clock, actor=cli_actor(actor), unit=unit, into=into,
                                    source_shift=source)
        out.print(f"copied {len(report.copied)} assignments; skipped {len(report.skipped)}")
        for skipped in report.skipped:
            out.print(f"  skipped {skipped['target']}: {skipped['reason']}")


@staffing_app.command("conflicts")
def conflicts(unit: Annotated[str | None, typer.Option()] = None) -> None:
    """Open conflicts between sources (what precedence decided, and why)."""
    with _work() as (session, _):
        rows = service.list_conflicts(session=session, unit=unit)
        if not rows:
            out.print("no open conflicts")
        for c in rows:
            out.print(f"{c.id} [{c.outcome}] {c.message} (seen {c.seen}×, last {c.last_seen_at:%Y-%m-%d %H:%M}Z)")
