"""The ``carerelay`` command: serve, migrate, load the demo, verify the audit chain, edit schedules.

A thin adapter like the HTTP routes: each command opens one unit of work and calls services.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carerelay.config import ConfigError, Settings, get_settings
from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import current_revision, head_revision, is_current, upgrade
from carerelay.integrations.exports.cli import connector_app
from carerelay.scheduling.cli import schedule_app
from carerelay.staffing.cli import staffing_app
from carerelay.web.cli import embed_app

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="carerelay: clinical communication platform")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
demo_app = typer.Typer(no_args_is_help=True, help="The demo hospital.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit log.")
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(audit_app, name="audit")
hl7_app = typer.Typer(no_args_is_help=True, help="HL7 v2 interfaces: send, reprocess, purge.")
app.add_typer(hl7_app, name="hl7")
keys_app = typer.Typer(no_args_is_help=True, help="Attachment encryption keys.")
messages_app = typer.Typer(no_args_is_help=True, help="Messages: retention.")
app.add_typer(keys_app, name="keys")
app.add_typer(messages_app, name="messages")
app.add_typer(schedule_app, name="schedule")
app.add_typer(embed_app, name="embed")
scim_app = typer.Typer(no_args_is_help=True, help="SCIM provisioning.")
scim_token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of identity providers.")
scim_app.add_typer(scim_token_app, name="token")
app.add_typer(scim_app, name="scim")
ldap_app = typer.Typer(no_args_is_help=True, help="LDAP / Active Directory sync.")
app.add_typer(ldap_app, name="ldap")
app.add_typer(connector_app, name="connector")
app.add_typer(staffing_app, name="staffing")
paging_app = typer.Typer(no_args_is_help=True, help="Nurse call, telemetry and paging (WCTP, TAP, SNPP, e-mail).")
app.add_typer(paging_app, name="paging")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _database(settings: Settings, *, node: bool = False) -> Database:
    """``node``: the engine of `carerelay serve`, whose idle transactions the database ends (a hung node's
    claims pass to the others); a CLI command may legitimately sit in one (an LDAP sync reading the directory)."""
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return Database(make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous,
                                idle_transaction_seconds=settings.db_idle_transaction_seconds if node else 0))


@contextmanager
def _progress(first: str) -> Iterator[Callable[[str, int, int], None]]:
    """A bar on stderr for long commands; the callback takes (stage, done, total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task(first, total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        yield progress


def _require_current(db: Database) -> None:
    if not is_current(db.engine):
        err.print(f"carerelay: database schema is at {current_revision(db.engine)}, "
                  f"expected {head_revision()}: run 'carerelay db upgrade'")
        raise typer.Exit(2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema to the newest migration (the only way the schema changes)."""
    db = _database(get_settings())
    upgrade(db.engine)
    out.print(f"database at {current_revision(db.engine)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision and whether it is the newest."""
    db = _database(get_settings())
    cur, head = current_revision(db.engine), head_revision()
    out.print(f"current {cur}, head {head}" + ("" if cur == head else " (run 'carerelay db upgrade')"))


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration does")],
    rev_id: Annotated[str, typer.Option(help="Revision id, e.g. 0003_scheduling")],
) -> None:
    """For developers: write a migration from the models, against a scratch SQLite database."""
    import tempfile

    from carerelay.core.migrate import autogenerate

    with tempfile.TemporaryDirectory() as tmp:
        autogenerate(message, rev_id, f"sqlite:///{tmp}/scratch.db")
    out.print("review the new file under carerelay/migrations/versions/ before committing it")


@db_app.command("copy")
def db_copy(
    to: Annotated[str, typer.Option("--to", help="The empty PostgreSQL database: postgresql://user@host/db")],
    source_url: Annotated[str | None, typer.Option("--from", help="SQLite database (default CARERELAY_DATABASE_URL)")]
    = None,
) -> None:
    """Move this installation from SQLite to PostgreSQL: every row, ids kept, audit chain verified."""
    from sqlalchemy.exc import OperationalError

    from carerelay.core.errors import CarerelayError
    from carerelay.ops.dbcopy import copy_database

    settings = get_settings()
    source, target = make_engine(source_url or settings.database_url), make_engine(to)
    try:
        with _progress("checking both databases") as progress:
            report = copy_database(source=source, target=target, clock=SystemClock(), actor=cli_actor("db-copy"),
                                   progress=progress)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}")
        raise typer.Exit(2 if exc.field in ("from", "to") else 1) from None
    except OperationalError as exc:
        err.print(f"carerelay: cannot reach a database: {str(exc.orig).splitlines()[0]}", markup=False)
        raise typer.Exit(2) from None
    finally:
        source.dispose()
        target.dispose()
    out.print(f"copied {report.rows} rows in {len(report.tables)} tables; id sequences moved past the copied ids "
              f"in {len(report.sequences)} tables; audit chain intact on the target: {report.audit_entries} entries")
    out.print("next: set CARERELAY_DATABASE_URL to the PostgreSQL URL on every node and start carerelay")


@demo_app.command("load")
def demo_load() -> None:
    """Load the synthetic demo hospital; running it again changes nothing."""
    from carerelay.demo import DEMO_PASSWORD, load_demo

    db = _database(get_settings())
    _require_current(db)
    with db.unit_of_work() as session:
        report = load_demo(session=session, clock=SystemClock(), actor=cli_actor("demo-loader"))
    created = ", ".join(f"{n} {k}" for k, n in sorted(report.created.items())) or "nothing new (already loaded)"
    out.print(f"demo hospital: {created}. Demo password for every account: {DEMO_PASSWORD}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exits 1 naming the first altered, inserted or removed entry."""
    from carerelay.audit.service import verify_chain

    db = _database(get_settings())
    with db.unit_of_work() as session:
        report = verify_chain(session=session)
    if report.ok:
        out.print(f"audit chain intact: {report.entries} entries verified")
        return
    err.print(f"audit chain BROKEN after {report.entries} good entries: {report.problem}")
    raise typer.Exit(1)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key as id:base64 for CARERELAY_ATTACHMENT_KEYS (put it first to make it active)."""
    import base64
    import secrets

    out.print(f"k{secrets.token_hex(3)}:{base64.b64encode(secrets.token_bytes(32)).decode()}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new active key to the key file; old attachments stay readable with their own key."""
    from pathlib import Path

    from carerelay.core.crypto import load_key_ring

    settings = get_settings()
    if settings.attachment_keys:
        err.print("carerelay: keys come from CARERELAY_ATTACHMENT_KEYS; rotate by putting a new key "
                  "('carerelay keys generate') first in that list on every node")
        raise typer.Exit(2)
    path = Path(settings.attachment_key_file)
    ring = load_key_ring(None, path).rotated()
    ring.to_file(path)
    out.print(f"active key is now {ring.active}; the ring holds {', '.join(ring.key_ids)}")


@messages_app.command("purge")
def messages_purge() -> None:
    """Delete messages past the organization's retention period, except those on legal hold."""
    from carerelay.messaging.compliance import purge_expired

    db = _database(get_settings())
    _require_current(db)
    with db.unit_of_work() as session:
        report = purge_expired(session=session, clock=SystemClock(), actor=cli_actor("retention"))
    out.print(f"purged {report.messages} messages older than {report.cutoff:%Y-%m-%d}; "
              f"{report.kept_on_hold} kept on legal hold")


@scim_token_app.command("create")
def scim_token_create(
    provider: Annotated[str, typer.Argument(help="Name of the identity provider, e.g. entra-id")],
) -> None:
    """Create a SCIM bearer token for an identity provider; it is printed once and stored hashed."""
    from carerelay.integrations.scim import service as scim

    db = _database(get_settings())
    _require_current(db)
    with db.unit_of_work() as session:
        created = scim.create_token(session=session, clock=SystemClock(), actor=cli_actor(), provider=provider)
    err.print(f"SCIM token {created.id} for {created.provider} (shown once; store it in the identity provider):")
    print(created.token)


@scim_token_app.command("list")
def scim_token_list() -> None:
    """List SCIM tokens (never the tokens themselves)."""
    from carerelay.integrations.scim import service as scim

    db = _database(get_settings())
    _require_current(db)
    with db.unit_of_work() as session:
        for row in scim.list_tokens(session=session):
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}Z" if row.revoked_at else "active"
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}Z" if row.last_used_at else "never"
            out.print(f"{row.id}\t{row.provider}\t{state}\tlast used {used}")


@scim_token_app.command("revoke")
def scim_token_revoke(token_id: Annotated[int, typer.Argument(help="Token id from 'scim token list'")]) -> None:
    """Revoke a SCIM token at once."""
    from carerelay.core.errors import NotFound
    from carerelay.integrations.scim import service as scim

    db = _database(get_settings())
    _require_current(db)
    try:
        with db.unit_of_work() as session:
            scim.revoke_token(session=session, clock=SystemClock(), actor=cli_actor(), token_id=token_id)
    except NotFound as exc:
        err.print(f"carerelay: {exc.message}")
        raise typer.Exit(1) from None
    out.print(f"SCIM token {token_id} revoked")


@ldap_app.command("sync")
def ldap_sync(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change; change nothing")] = False,
    full: Annotated[bool, typer.Option("--full", help="Read every entry, not only those changed since last run")]
    = False,
) -> None:
    """Create, update and deactivate people (and LDAP groups) from the configured directory."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from carerelay.core.errors import CarerelayError
    from carerelay.integrations.ldap import service as ldap

    settings = get_settings()
    db = _database(settings)
    _require_current(db)
    try:
        config = ldap.config_from_settings(settings)
        reader = ldap.Ldap3Directory(config)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}")
        raise typer.Exit(2) from None
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("connecting", total=None)

            def progress(stage: str, done: int, total: int | None) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            with db.unit_of_work() as session:
                report = ldap.sync(session=session, clock=SystemClock(), actor=cli_actor("ldap-sync"), config=config,
                                   directory_reader=reader, dry_run=dry_run, full=full, progress=progress)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}")
        raise typer.Exit(1) from None
    finally:
        reader.close()
    _print_ldap_report(report)
    if report.count("error"):
        raise typer.Exit(1)


def _print_ldap_report(report: object) -> None:
    from rich.table import Table

    from carerelay.integrations.ldap.service import SyncReport

    assert isinstance(report, SyncReport)
    kind = "DRY RUN: nothing was changed" if report.dry_run else "applied"
    mode = "full" if report.full else "incremental"
    title = f"LDAP sync ({mode}, {kind})"
    table = Table(title=title)
    for column in ("action", "user", "fields", "entry / reason"):
        table.add_column(column)
    for change in report.changes:
        table.add_row(change.action, change.username, ", ".join(change.fields), change.detail or change.dn)
    if report.changes:
        out.print(table)
    counts = report.summary()
    out.print(f"{title}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))


@hl7_app.command("send")
def hl7_send(
    file: Annotated[Path, typer.Argument(help="File with one or more HL7 messages (plain or MLLP-framed)")],
    host: Annotated[str, typer.Option(help="Listener address")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Listener port (default CARERELAY_MLLP_PORT)")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK")] = 30.0,
) -> None:
    """Send every message in FILE over MLLP and print each ACK; exits 1 if any is not AA."""
    from carerelay.integrations.hl7.client import MLLPClient, ack_code, split_messages

    messages = split_messages(file.read_bytes())
    if not messages:
        err.print(f"carerelay: no HL7 message in {file}")
        raise typer.Exit(2)
    target = port or get_settings().mllp_port
    refused = 0
    try:
        with MLLPClient(host, target, timeout=timeout) as client:
            for message in messages:
                ack = client.send(message)
                code = ack_code(ack)
                refused += code != "AA"
                out.print(f"{code or '??'} " + ack.decode("utf-8", errors="replace").replace("\r", " | ").strip(" |"),
                          markup=False, highlight=False)
    except OSError as exc:
        err.print(f"carerelay: cannot reach {host}:{target}: {exc}")
        raise typer.Exit(2) from None
    if refused:
        raise typer.Exit(1)


@hl7_app.command("reprocess")
def hl7_reprocess(
    ids: Annotated[list[int] | None, typer.Argument(help="Message ids (default: every message in error)")] = None,
    status: Annotated[str | None, typer.Option(help="Instead of ids: messages with this status (error…)")] = None,
    message_type: Annotated[str | None, typer.Option("--type", help="Only this type (ADT, ORU^R01…)")] = None,
    feed: Annotated[str | None, typer.Option(help="Only this feed")] = None,
) -> None:
    """Put stored messages back in the queue and process them now, in arrival order."""
    from carerelay.core.errors import CarerelayError
    from carerelay.integrations.hl7 import store
    from carerelay.integrations.hl7.feeds import feeds_from, result_policy
    from carerelay.integrations.hl7.presenting import rules_from

    settings = get_settings()
    presenting = rules_from(settings)
    db = _database(settings)
    _require_current(db)
    clock = SystemClock()
    query = None if ids else store.MessageQuery(status=status, message_type=message_type, feed=feed)
    try:
        with db.unit_of_work() as session:
            queued = store.reprocess_messages(session=session, clock=clock, actor=cli_actor("hl7-reprocess"),
                                              ids=ids or (), query=query)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    feeds = {f.name: f for f in feeds_from(settings)}
    stat = tuple(p.strip() for p in settings.hl7_stat_priorities.split(",") if p.strip())
    results: dict[str, int] = {}
    while True:
        with db.unit_of_work() as session:
            done = store.process_pending(session=session, clock=clock, feeds=feeds, policy=result_policy(settings),
                                         stat_priorities=stat, limit=50, presenting=presenting)
        for item in done:
            results[item.status] = results.get(item.status, 0) + 1
            if item.status == "error":
                err.print(f"message {item.message_id}: {item.note}", markup=False)
        if not done:
            break
    summary = ", ".join(f"{n} {s}" for s, n in sorted(results.items())) or "nothing"
    out.print(f"queued {len(queued)} message(s); processed: {summary}")


@hl7_app.command("purge")
def hl7_purge(
    older_than_days: Annotated[int, typer.Option(help="Delete stored messages received more than N days ago")],
) -> None:
    """Delete old messages from the store (audited). Results, orders and patients stay."""
    from carerelay.core.errors import CarerelayError
    from carerelay.integrations.hl7 import store

    db = _database(get_settings())
    _require_current(db)
    try:
        with db.unit_of_work() as session:
            deleted = store.purge_messages(session=session, clock=SystemClock(), actor=cli_actor("hl7-purge"),
                                           older_than_days=older_than_days)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    out.print(f"deleted {deleted} message(s) received more than {older_than_days} days ago")


@paging_app.command("purge")
def paging_purge(
    older_than_days: Annotated[int, typer.Option(help="Delete monitor rows received more than N days ago")],
) -> None:
    """Delete old inbound pages and device alerts from the feed monitor (audited). Alerts stay."""
    from carerelay.core.errors import CarerelayError
    from carerelay.integrations.paging import service as paging

    db = _database(get_settings())
    _require_current(db)
    try:
        with db.unit_of_work() as session:
            deleted = paging.purge_messages(session=session, clock=SystemClock(), actor=cli_actor("paging-purge"),
                                            older_than_days=older_than_days)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}")
        raise typer.Exit(2) from None
    out.print(f"deleted {deleted} paging message(s) received more than {older_than_days} days ago")


@app.command("simulate")
def simulate(
    hours: Annotated[float, typer.Option(min=0.25, max=168, help="Simulated hours")] = 24.0,
    speed: Annotated[float, typer.Option(min=0, help="Simulated seconds per real second (60: an hour a "
                                                    "minute); 0 as fast as possible")] = 60.0,
    fast: Annotated[bool, typer.Option("--fast", help="As fast as possible (the same as --speed 0)")] = False,
    beds: Annotated[int, typer.Option(min=10, max=2000, help="Census: beds in use")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the day's workload and of how people answer")] = 1,
    start: Annotated[str | None, typer.Option(help="First instant, site wall clock or with an offset "
                                                   "(default 2026-10-31T12:00 Chicago: a DST night)")] = None,
    no_answer_share: Annotated[float, typer.Option(min=0, max=0.9, help="Share of notified people who never "
                                                                        "answer (operators always do)")] = 0.1,
    database_url: Annotated[str | None, typer.Option(help="An empty database to run in (default: a new SQLite "
                                                          "file under var/simulation/)")] = None,
    keep_database: Annotated[bool, typer.Option(help="Keep the default SQLite file after the run")] = False,
    report_file: Annotated[Path | None, typer.Option("--out", help="JSON report (default var/simulation/"
                                                                   "<time>.json); the chart beside it as .svg")] = None,
) -> None:
    """Play a synthetic hospital day through the real services on a simulated clock; report latency per
    flow and the safety figures. Exits 1 when a safety target is missed, 2 when it cannot run."""
    import json
    import logging

    from sqlalchemy.exc import OperationalError

    from carerelay.core.errors import CarerelayError
    from carerelay.simulation import chart, facts, report, runner

    stamp = f"{SystemClock().now():%Y%m%dT%H%M%SZ}"
    folder = Path("var/simulation")
    scratch = None if database_url else folder / f"{stamp}.db"
    target = report_file or folder / f"{stamp}.json"
    try:
        options = runner.Options(start=runner.start_instant(start or runner.DEFAULT_START), hours=hours, beds=beds,
                                 seed=seed, speed=0.0 if fast else speed, no_answer_share=no_answer_share)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}", markup=False)
        raise typer.Exit(2) from None
    if scratch is not None:
        scratch.parent.mkdir(parents=True, exist_ok=True)
    db = Database(make_engine(database_url or f"sqlite:///{scratch}"))
    services = logging.getLogger("carerelay")  # a day's worth of warnings would bury the bar; the report has them
    level = services.level
    services.setLevel(logging.ERROR)
    try:
        with _progress("preparing the database") as progress:
            run = runner.simulate(db=db, options=options, actor=cli_actor("simulation"), progress=progress)
            progress("checking what was stored", 1, 1)
            found = facts.collect(db=db, run=run)
        result = report.build_report(run=run, facts=found, database=db.dialect)
    except CarerelayError as exc:
        err.print(f"carerelay: {exc.message}", markup=False)
        raise typer.Exit(2) from None
    except OperationalError as exc:
        err.print(f"carerelay: cannot reach the database: {str(exc.orig).splitlines()[0]}", markup=False)
        raise typer.Exit(2) from None
    finally:
        services.setLevel(level)
        db.engine.dispose()
        if scratch is not None and not keep_database:
            for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
                leftover.unlink(missing_ok=True)
    data = result.as_json()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")
    critical = [a for a in found.alerts if report.is_critical(a)]
    waits = [(a.acknowledged_at - a.created_at).total_seconds() for a in critical if a.acknowledged_at is not None]
    target.with_suffix(".svg").write_text(chart.render(data, waits, len(critical) - len(waits)))
    _print_simulation(data)
    out.print(f"report {target}, chart {target.with_suffix('.svg')}"
              + (f", database {scratch}" if scratch is not None and keep_database else ""))
    if not result.met:
        raise typer.Exit(1)


def _print_simulation(data: dict[str, object]) -> None:
    from rich.table import Table

    from carerelay.simulation.report import LISTED

    sim, flows, safety = data["simulation"], data["flows"], data["safety"]
    assert isinstance(sim, dict) and isinstance(flows, dict) and isinstance(safety, dict)
    table = Table(title=f"Hospital day from {sim['start_local']}: {sim['hours']:g} h, {sim['beds']} beds, "
                        f"seed {sim['seed']} ({sim['wall_seconds']} s)")
    for column in ("flow", "offered", "processed", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    for name, row in flows.items():
        table.add_row(name.replace("_", " "), *("" if row[k] is None else str(row[k])
                                                for k in ("offered", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms")))
    out.print(table)
    share = safety["handled_share"]
    shown = "n/a" if share is None else f"{100 * share:.1f}%"
    out.print(f"critical and STAT alerts handled within policy: {shown} of {safety['critical_alerts']} "
              f"(target 100%); escalated {safety['critical_escalated']}, acknowledged at the first step "
              f"{safety['critical_acknowledged_first_step']}")
    for key, label in (("late", "late"), ("reached_nobody", "reached nobody"), ("lost_messages", "lost messages"),
                       ("timer_failures", "timer failures"), ("errors", "refused or failed items"),
                       ("bed_mismatches", "beds not reaching their nurse"), ("coverage_gaps", "on-call gaps"),
                       ("unresolvable_addresses", "paging addresses that do not exist")):
        found = safety[key]
        assert isinstance(found, list)
        listed = ", ".join(str(f) for f in found[:LISTED])
        out.print(f"{label}: {len(found)} (target 0){': ' + listed if found else ''}", markup=False)
    verdict = "met" if safety["met"] else "MISSED: " + "; ".join(str(m) for m in safety["misses"])
    out.print(f"safety targets {verdict}", markup=False)


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default CARERELAY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default CARERELAY_PORT)")] = None,
) -> None:
    """Run the platform: HTTP now, and every protocol listener as they arrive."""
    import uvicorn

    from carerelay.app import create_app
    from carerelay.core.collector import settle_after_start
    from carerelay.core.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    from carerelay.integrations.hl7.feeds import feeds_from, result_policy
    from carerelay.integrations.hl7.presenting import rules_from

    feeds_from(settings)  # a wrong feed setting stops start-up with one line, before anything binds
    result_policy(settings)
    from carerelay.integrations.paging.listeners import allow_list
    from carerelay.integrations.wctp.gateways import gateways_from

    allow_list(settings)
    gateways_from(settings)
    rules_from(settings)
    db = _database(settings, node=True)
    _require_current(db)
    application = create_app(settings, db=db, listeners=True)
    # No per-message deflate: event frames are small, and compressing each costs CPU on every socket.
    config = uvicorn.Config(application, host=host or settings.host, port=port or settings.port,
                            log_config=None, timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
                            ws_per_message_deflate=False)
    settle_after_start()
    uvicorn.Server(config).run()


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        err.print(f"carerelay: {exc}", soft_wrap=True)
        sys.exit(2)
