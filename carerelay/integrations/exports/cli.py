"""`carerelay connector …`: list, show, create, map, run (or dry-run), download and history.

A thin adapter: each step opens its own unit of work and calls the exports services; a run is
queued, sent and recorded in separate units of work, so no transfer happens inside a transaction.
The CLI acts as the system; ``--actor`` names who is typing, for the audit log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from carerelay.core.actor import cli_actor
from carerelay.core.clock import Clock, SystemClock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError, Invalid
from carerelay.integrations.exports import runner, service
from carerelay.integrations.exports.models import ExportRun
from carerelay.scheduling import service as scheduling

connector_app = typer.Typer(no_args_is_help=True, help="Outbound connectors and the demographic import.")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ActorOpt = Annotated[str, typer.Option("--actor", help="Who is typing (recorded in the audit log)")]
Ref = Annotated[str, typer.Argument(help="Connector id or name")]


def _open_database() -> Database:
    from carerelay.cli import _database, _require_current
    from carerelay.config import get_settings

    db = _database(get_settings())
    _require_current(db)
    return db


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except CarerelayError as exc:
        where = f"{exc.field}: " if exc.field else ""
        err.print(f"carerelay: {where}{exc.message}", markup=False)
        raise typer.Exit(1) from None


@contextmanager
def _work(db: Database) -> Iterator[tuple[Session, Clock]]:
    with _refusals(), db.unit_of_work() as session:
        yield session, SystemClock()


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}Z" if value is not None else "-"


@connector_app.command("list")
def list_connectors() -> None:
    """Every connector with its trigger, state and last success (one tab-separated line each)."""
    from carerelay.integrations.exports.transport import describe

    db = _open_database()
    print("id\tname\ttarget\tenabled\ttrigger\tcontent\tdestination\tnext due\tlast success\tfailing since")
    with _work(db) as (session, _clock):
        for c in service.list_connectors(session=session):
            fields = (str(c.id), c.name, c.target, "yes" if c.enabled else "no", c.trigger["kind"], c.content,
                      describe(service.parse(c).transport), _when(c.next_due_at), _when(c.last_success_at),
                      _when(c.failing_since))
            print("\t".join(fields))


@connector_app.command("show")
def show(ref: Ref) -> None:
    """A connector's whole configuration (JSON) and its last runs."""
    db = _open_database()
    with _work(db) as (session, _clock):
        c = service.find_connector(session=session, ref=ref)
        config = {"id": c.id, "name": c.name, "target": c.target, "enabled": c.enabled, "person_key": c.person_key,
                  "mapping_key": c.mapping_key, "departments": service.department_codes(session, c),
                  "timezone": c.timezone, "trigger": c.trigger, "content": c.content, "transport": c.transport,
                  "file_name": c.file_name, "options": c.options, "notify": c.notify,
                  "max_attempts": c.max_attempts, "next_due_at": _when(c.next_due_at),
                  "last_success_at": _when(c.last_success_at), "failing_since": _when(c.failing_since)}
        print(json.dumps(config, indent=2))
        _print_runs(service.list_runs(session=session, connector_id=c.id, limit=5))


@connector_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="JSON file: the body of POST /api/exports/connectors")],
    actor: ActorOpt = "cli",
) -> None:
    """Create a connector from a JSON file."""
    try:
        values = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        err.print(f"carerelay: cannot read {file}: {exc}", markup=False)
        raise typer.Exit(2) from None
    db = _open_database()
    with _work(db) as (session, clock):
        c = service.create_connector(session=session, clock=clock, actor=cli_actor(actor), values=values)
        out.print(f"connector {c.id} {c.name} ({c.target}) created; next due {_when(c.next_due_at)}")


@connector_app.command("map")
def map_assignment(
    ref: Ref,
    assignment: Annotated[str, typer.Argument(help="Assignment code, e.g. CARD-CALL1-NIGHT")],
    fields: Annotated[str, typer.Argument(help="JSON object of the target's fields, or 'none' to remove")],
    actor: ActorOpt = "cli",
) -> None:
    """Set a connector's fields on an assignment (checked against the target)."""
    db = _open_database()
    with _work(db) as (session, clock):
        c = service.find_connector(session=session, ref=ref)
        found = scheduling.find_assignment(session=session, code=assignment)
        if found is None:
            raise Invalid(f"no assignment {assignment!r}", field="assignment")
        try:
            parsed = None if fields.lower() == "none" else json.loads(fields)
        except ValueError as exc:
            raise Invalid(f"not JSON: {exc}", field="fields") from None
        service.map_assignment(session=session, clock=clock, actor=cli_actor(actor), connector_id=c.id,
                               assignment_id=found.id, fields=parsed)
        out.print(f"{assignment}: {c.mapping_key} mapping {'removed' if parsed is None else 'set'}")


@connector_app.command("enable")
def enable(ref: Ref, actor: ActorOpt = "cli") -> None:
    """Let the connector's trigger run it."""
    _set_enabled(ref, True, actor)


@connector_app.command("disable")
def disable(ref: Ref, actor: ActorOpt = "cli") -> None:
    """Stop the connector's trigger (history and state are kept)."""
    _set_enabled(ref, False, actor)


def _set_enabled(ref: str, enabled: bool, actor: str) -> None:
    db = _open_database()
    with _work(db) as (session, clock):
        c = service.find_connector(session=session, ref=ref)
        service.update_connector(session=session, clock=clock, actor=cli_actor(actor), connector_id=c.id,
                                 changes={"enabled": enabled})
        out.print(f"connector {c.id} {c.name} {'enabled' if enabled else 'disabled'}")


@connector_app.command("run")
def run(
    ref: Ref,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build what would be sent; send and change nothing")]
    = False,
    actor: ActorOpt = "cli",
) -> None:
    """Run a connector now (exit 1 if the run did not succeed)."""
    db = _open_database()
    who = cli_actor(actor)
    with _work(db) as (session, clock):
        c = service.find_connector(session=session, ref=ref)
        inbound = service.parse(c).target.direction == "inbound"
        if dry_run and not inbound:
            done = runner.dry_run(session=session, clock=clock, actor=who, connector_id=c.id)
            run_id = done.id
        elif dry_run:
            run_id = runner.queue_dry_import(session=session, clock=clock, actor=who, connector_id=c.id).id
        else:
            run_id = runner.request_run(session=session, clock=clock, actor=who, connector_id=c.id).id
    with _refusals():
        runner.attempt(db=db, clock=SystemClock(), run_id=run_id)
    with _work(db) as (session, _clock):
        finished = service.get_run(session=session, run_id=run_id)
        _print_run(finished)
        ok = finished.status in ("succeeded", "nothing", "dry_run")
    if not ok:
        raise typer.Exit(1)


@connector_app.command("download")
def download(
    run_id: Annotated[int, typer.Argument(help="Run id (see 'history')")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")] = None,
    actor: ActorOpt = "cli",
) -> None:
    """Exactly what a run sent (or a dry run would send)."""
    db = _open_database()
    with _work(db) as (session, clock):
        found = service.access_payload(session=session, clock=clock, actor=cli_actor(actor), run_id=run_id)
        payload = found.payload or b""
        name = found.file_name
    if output is None:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
        return
    output.write_bytes(payload)
    err.print(f"run {run_id}: {len(payload)} bytes written to {output} (sent as {name or 'an API payload'})")


@connector_app.command("history")
def history(ref: Ref, limit: Annotated[int, typer.Option(min=1, max=500)] = 20) -> None:
    """The connector's runs, newest first: when, why, where, result, rows."""
    db = _open_database()
    with _work(db) as (session, _clock):
        c = service.find_connector(session=session, ref=ref)
        _print_runs(service.list_runs(session=session, connector_id=c.id, limit=limit))


@connector_app.command("run-due")
def run_due() -> None:
    """Queue and send whatever is due now (what the server's worker does every few seconds)."""
    db = _open_database()
    with _refusals():
        sent = runner.process_due(db=db, clock=SystemClock())
    out.print(f"{sent} run(s) attempted")


def _print_runs(runs: list[ExportRun]) -> None:
    print("run\tqueued\treason\tstatus\tcontent\trows\tattempts\tfile / destination\terror")
    for r in runs:
        fields = (str(r.id) + (" (dry)" if r.dry_run else ""), _when(r.queued_at), r.reason, r.status,
                  r.content or "-", str(r.row_count), str(r.attempts), r.file_name or r.destination or "-",
                  (r.error or "").replace("\n", " ")[:200])
        print("\t".join(fields))


def _print_run(r: ExportRun) -> None:
    out.print(f"run {r.id}: {r.status}" + (f", {r.content}" if r.content else "") + f", {r.row_count} row(s), "
              f"attempt {r.attempts}" + (f", to {r.destination}" if r.destination else ""), markup=False)
    if r.file_name:
        out.print(f"file: {r.file_name}", markup=False)
    for item in r.excluded[:20]:
        out.print(f"left out: {item.get('name') or item.get('username')} ({item.get('reason')})", markup=False)
    for item in r.unmapped[:20]:
        out.print(f"not sent: {item.get('code')} ({item.get('reason')})", markup=False)
    for item in r.problems[:20]:
        out.print(f"problem: {item}", markup=False)
    if r.error:
        err.print(f"error: {r.error}", markup=False)
    if r.status == "retrying" and r.next_attempt_at is not None:
        err.print(f"next attempt at {_when(r.next_attempt_at)} (the server's worker retries it)", markup=False)
