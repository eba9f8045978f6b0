"""The ``carerelay`` command: serve, migrate, load the demo, verify the audit chain, edit schedules.

A thin adapter like the HTTP routes: each command opens one unit of work and calls services.
"""

from __future__ import annotations

import sys
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy.exc import OperationalError

    from carerelay.core.errors import CarerelayError
    from carerelay.ops.dbcopy import copy_database

    settings = get_settings()
    source, target = make_engine(source_url or settings.database_url), make_engine(to)
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("checking both databases", total=None)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

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


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default CARERELAY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default CARERELAY_PORT)")] = None,
) -> None:
    """Run the platform: HTTP now, and every protocol listener as they arrive."""
    import uvicorn

    from carerelay.app import create_app
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
    uvicorn.Server(config).run()


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        err.print(f"carerelay: {exc}", soft_wrap=True)
        sys.exit(2)
