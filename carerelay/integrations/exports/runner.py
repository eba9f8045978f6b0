"""Running connectors: notice what is due, build, send outside any transaction, record, retry, tell admins.

One attempt is three steps:

1. **Build** (one short transaction): lock the run, read the published schedule through the
   scheduling and directory services, diff it against ``export_state``, render the payload and store
   it on the run (status ``sending``, under a lease). Nothing is sent yet.
2. **Send** (no transaction open): the SFTP upload, the folder write or the API calls.
3. **Record** (another short transaction): on success the state becomes what the other side now
   holds; on failure it stays as it was, so the next attempt or run sends everything still missing.
   A retryable failure waits on a durable timer (``exports.retry``) with back-off (or the server's
   Retry-After); the last failure, or one a retry cannot fix, fails the run and e-mails the
   connector's administrators through the notifications outbox.

What is due is decided by ``queue_due``: time triggers compare ``next_due_at`` with the clock;
schedule-driven triggers compare the scheduling change watermark (change log and publish versions)
with the one the connector saw last. We read the log on a timer instead of registering a hook in the
scheduling service because the log is already durable and written by every path that changes a
schedule — any node, the CLI, a vendor sync — while a hook only fires in a process that imported this
package; a terminal edit would then be silently missed. The cost is a few seconds of latency and one
indexed ``max(id)`` query per connector per check.

A connector has at most one active run (queued, sending or retrying): triggers while one is waiting
fold into it, and since it builds at send time it carries every change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.core.errors import Conflict, Invalid
from carerelay.integrations.exports import service
from carerelay.integrations.exports.base import BuildContext, Change, ExportError, PushOutcome, Row, Target
from carerelay.integrations.exports.config import CHANGE_TRIGGERS, FolderTransport, HttpTransport, PayPeriod
from carerelay.integrations.exports.delta import Held, diff, digest
from carerelay.integrations.exports.models import Connector, ExportRun, ExportState, RunStatus
from carerelay.integrations.exports.source import gather
from carerelay.integrations.exports.targets.demographics import DemographicImport
from carerelay.integrations.exports.transport import (
    Http,
    deliver_file,
    describe,
    fetch_sftp,
    http_client,
    read_folder,
)
from carerelay.integrations.exports.triggers import next_due, pay_period
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.notifications import service as notifications
from carerelay.scheduling import service as scheduling
from carerelay.scheduling.timeline import zone

log = logging.getLogger("carerelay.exports")

LEASE = timedelta(minutes=10)
ALERT_EVERY = timedelta(hours=1)
RETRY_TIMER = "exports.retry"
MAX_BACKOFF = timedelta(minutes=30)


def connector_actor(connector: Connector) -> Actor:
    return Actor(person_id=None, username=f"export:{connector.name}", roles=frozenset({"system"}))


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8… minutes after each failed attempt, at most 30."""
    return min(MAX_BACKOFF, timedelta(minutes=2 ** max(attempts - 1, 0)))


# -- queueing -----------------------------------------------------------------------------------

def _new_run(session: Session, clock: Clock, connector: Connector, reason: str, requested_by: str,
             dry_run: bool = False) -> ExportRun:
    now = clock.now()
    run = ExportRun(connector_id=connector.id, reason=reason, requested_by=requested_by, dry_run=dry_run,
                    status=RunStatus.QUEUED.value, queued_at=now, next_attempt_at=now, attempts=0, row_count=0,
                    excluded=[], unmapped=[], problems=[], detail={})
    session.add(run)
    session.flush()
    return run


def queue_run(*, session: Session, clock: Clock, connector: Connector, reason: str, requested_by: str) -> ExportRun:
    """A new queued run, or the waiting one this trigger folds into (a retrying run is brought forward)."""
    active = service.active_run(session, connector.id)
    if active is not None:
        if active.status == RunStatus.RETRYING and reason == "manual":
            active.status = RunStatus.QUEUED.value
            active.next_attempt_at = clock.now()
            jobs.cancel(session=session, clock=clock, key=f"export-run:{active.id}")
        return active
    return _new_run(session, clock, connector, reason, requested_by)


def request_run(*, session: Session, clock: Clock, actor: Actor, connector_id: int) -> ExportRun:
    """An administrator's "run now": queued for the worker, which sends it within seconds."""
    service.check_export_admin(actor)
    connector = service.get_connector(session=session, connector_id=connector_id)
    session.execute(select(Connector.id).where(Connector.id == connector.id).with_for_update())
    if not connector.enabled:
        raise Conflict(f"connector {connector.name} is disabled; enable it or use a dry run", field="enabled")
    run = queue_run(session=session, clock=clock, connector=connector, reason="manual", requested_by=actor.username)
    audit.record(session=session, clock=clock, actor=actor, action="exports.request_run", object_type="connector",
                 object_id=connector.id, detail={"run_id": run.id})
    return run


def queue_due(*, db: Database, clock: Clock) -> int:
    """Queue a run for every enabled connector whose time came or whose schedules changed."""
    queued = 0
    with db.unit_of_work() as session:
        now = clock.now()
        query = select(Connector).where(Connector.enabled.is_(True)).order_by(Connector.id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for connector in session.execute(query).scalars():
            trigger = service.TRIGGERS.validate_python(connector.trigger)
            active = service.active_run(session, connector.id)
            if active is not None and active.status == RunStatus.SENDING:
                continue  # it was built before whatever is new: queue after it finishes
            if trigger.kind in CHANGE_TRIGGERS:
                mark = list(scheduling.change_watermark(session=session, department_ids=connector.department_ids))
                seen = connector.seen_watermark
                if seen is not None and len(seen) == 3:
                    moved = mark != seen if trigger.kind == "on_change" else mark[1:] != seen[1:]
                else:
                    moved = True
                if not moved:
                    continue
                connector.seen_watermark = mark
                reason = "initial sync" if seen is None else ("schedule change" if trigger.kind == "on_change"
                                                              else "publish")
            elif connector.next_due_at is not None and connector.next_due_at <= now:
                connector.next_due_at = next_due(trigger, after=now, timezone=connector.timezone)
                reason = trigger.kind
            else:
                continue
            if active is None:
                _new_run(session, clock, connector, reason, "trigger")
                queued += 1
    return queued


# -- retry timers -------------------------------------------------------------------------------

@jobs.HANDLERS.register(RETRY_TIMER)
def _retry_due(session: Session, clock: Clock, timer: Timer) -> None:
    run = session.get(ExportRun, int(timer.params["run_id"]))
    if run is not None and run.status == RunStatus.RETRYING:
        run.status = RunStatus.QUEUED.value
        run.next_attempt_at = clock.now()


# -- building -----------------------------------------------------------------------------------

@dataclass
class Built:
    ctx: BuildContext
    rows: list[Row]
    send: list[Change]
    state_changes: list[Change]
    full_replace: bool
    content: str
    period_start: str | None
    file_name: str | None
    payload: bytes
    content_type: str
    excluded: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    window: tuple[date, date] | None = None


def _held(session: Session, connector_id: int) -> dict[str, Held]:
    rows = session.execute(select(ExportState).where(ExportState.connector_id == connector_id)).scalars()
    return {r.key: Held(r.digest, r.values, r.remote_id, r.on_date) for r in rows}


def _file_name(connector: Connector, target: Target, options: Any, now: datetime, period: str | None,
               run_id: int) -> str:
    local = now.astimezone(zone(connector.timezone))
    pattern = connector.file_name or target.default_file_name
    extension = getattr(options, "format", "csv")
    try:
        return pattern.format(name=connector.name.replace(" ", "_"), timestamp=f"{local:%Y%m%d%H%M%S}",
                              date=f"{local:%Y%m%d}", period_start=(period or "").replace("-", ""), run=run_id,
                              extension=extension)
    except (KeyError, IndexError, ValueError) as exc:
        raise ExportError(f"file_name {pattern!r}: unknown field {exc}", retryable=False) from None


def build(*, session: Session, clock: Clock, connector: Connector, run_id: int) -> Built:
    """Everything an attempt sends, computed in the caller's transaction. Raises ExportError."""
    parsed = service.parse(connector)
    target = parsed.target
    now = clock.now()
    ctx = BuildContext(connector_id=connector.id, name=connector.name, now=now,
                       timezone=connector.timezone, options=parsed.options, person_key=connector.person_key)
    period_start = None
    if isinstance(parsed.trigger, PayPeriod):
        ctx.period = pay_period(parsed.trigger, ctx.today)
        period_start = ctx.period[0].isoformat()
    held = _held(session, connector.id)
    # A new pay period starts from nothing (its first file carries every shift). API targets keep
    # their state whatever the trigger: it holds the other side's ids.
    new_period = period_start is not None and connector.state_period != period_start and target.direction != "api"
    previous = {} if new_period else held
    start, end = target.window(ctx)
    # Items that left the window by the passing of time (or a narrower window) are not deletions.
    previous = {k: h for k, h in previous.items() if h.on_date is None or start <= h.on_date <= end}
    gathered = gather(session=session, target=target, mapping_key=connector.mapping_key,
                      person_key=connector.person_key, department_ids=connector.department_ids, from_date=start,
                      to_date=end)
    if gathered.problems:
        raise ExportError("; ".join(f"{p['code']}: {p['problem']}" for p in gathered.problems), retryable=False)
    excluded = list(gathered.excluded)
    seen_reasons: set[tuple[str, str]] = set()
    for item in gathered.items:
        why = target.accepts(item, ctx)
        if why is None:
            ctx.items.append(item)
            continue
        who = item.person.username if item.person is not None else item.placeholder_name or ""
        if (who, why) not in seen_reasons:
            seen_reasons.add((who, why))
            excluded.append({"person_id": item.person.id if item.person else None, "username": who,
                             "name": item.who, "assignment": item.assignment_code, "reason": why})
    rows = target.rows(ctx)
    state_changes = diff(previous, rows)
    delta_file = connector.content == "delta" and bool(previous)
    if target.direction == "api":
        send = state_changes
        if connector.content == "full":
            changed = {c.key for c in state_changes}
            send = state_changes + [Change("change", r.key, r.values, previous[r.key].remote_id,
                                           previous[r.key].values) for r in rows if r.key not in changed]
        payload = _plan(send)
        content = connector.content
    else:
        send = state_changes if delta_file else [Change("add", r.key, r.values) for r in rows]
        content = "delta" if delta_file else "full"
        payload = target.render(ctx, send, delta_file)
    file_name = (_file_name(connector, target, parsed.options, now, period_start, run_id)
                 if target.direction == "file" else None)
    media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" \
        if (file_name or "").endswith(".xlsx") else target.content_type
    return Built(ctx=ctx, rows=rows, send=send, state_changes=state_changes, full_replace=new_period, content=content,
                 period_start=period_start, file_name=file_name, payload=payload, content_type=media,
                 excluded=excluded, unmapped=gathered.unmapped, window=(start, end))


def _plan(changes: list[Change]) -> bytes:
    return json.dumps({"changes": [{"action": c.action, "key": c.key, "values": c.values} for c in changes]},
                      indent=2, default=str).encode()


def _store_built(run: ExportRun, built: Built) -> None:
    run.content = built.content
    run.file_name = built.file_name
    run.content_type = built.content_type
    run.payload = built.payload
    run.payload_sha256 = hashlib.sha256(built.payload).hexdigest()
    run.row_count = len(built.send)
    run.period_start = built.period_start
    run.excluded = built.excluded
    run.unmapped = built.unmapped


def dry_run(*, session: Session, clock: Clock, actor: Actor, connector_id: int) -> ExportRun:
    """Build what a run would send now and keep it on a dry-run record; nothing is sent or changed."""
    service.check_export_admin(actor)
    connector = service.get_connector(session=session, connector_id=connector_id)
    target = service.parse(connector).target
    if target.direction == "inbound":
        raise Invalid("a dry run of an import reads the remote folder: run 'carerelay connector run --dry-run'",
                      field="dry_run")
    run = _new_run(session, clock, connector, "manual", actor.username, dry_run=True)
    run.started_at = clock.now()
    try:
        with session.begin_nested():
            built = build(session=session, clock=clock, connector=connector, run_id=run.id)
    except ExportError as exc:
        run.error = str(exc)
        run.status = RunStatus.FAILED.value
    else:
        _store_built(run, built)
        run.status = RunStatus.DRY_RUN.value
        run.destination = describe(service.parse(connector).transport)
    run.finished_at = clock.now()
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="exports.dry_run", object_type="connector",
                 object_id=connector.id, detail={"run_id": run.id, "status": run.status, "rows": run.row_count,
                                                 "error": run.error})
    return run


# -- one attempt --------------------------------------------------------------------------------

@dataclass
class Attempt:
    run_id: int
    connector_id: int
    target: Target
    transport: Any
    built: Built | None
    inbound: bool = False


def due_runs(*, db: Database, clock: Clock, limit: int = 20) -> list[int]:
    with db.read_only() as session:
        now = clock.now()
        query = (select(ExportRun.id).where(or_(
            (ExportRun.status == RunStatus.QUEUED.value) & (ExportRun.next_attempt_at <= now),
            (ExportRun.status == RunStatus.SENDING.value) & (ExportRun.lease_until < now)))
            .order_by(ExportRun.id).limit(limit))
        return list(session.execute(query).scalars())


def send_due(*, db: Database, clock: Clock, limit: int = 20) -> int:
    """Attempt every due run; returns how many were attempted."""
    ids = due_runs(db=db, clock=clock, limit=limit)
    for run_id in ids:
        attempt(db=db, clock=clock, run_id=run_id)
    return len(ids)


def process_due(*, db: Database, clock: Clock) -> int:
    """What the worker does on each pass: queue due connectors, then send due runs."""
    queue_due(db=db, clock=clock)
    return send_due(db=db, clock=clock)


def attempt(*, db: Database, clock: Clock, run_id: int) -> ExportRun | None:
    prepared = _prepare(db, clock, run_id)
    if prepared is None:
        return None
    if prepared.inbound:
        return _import(db, clock, prepared)
    assert prepared.built is not None
    outcome = _send(prepared)
    return _record(db, clock, prepared, outcome)


def _prepare(db: Database, clock: Clock, run_id: int) -> Attempt | None:
    with db.unit_of_work() as session:
        now = clock.now()
        run = session.execute(select(ExportRun).where(ExportRun.id == run_id).with_for_update()).scalar_one_or_none()
        if run is None:
            return None
        claimable = (run.status == RunStatus.QUEUED and (run.next_attempt_at is None or run.next_attempt_at <= now)) \
            or (run.status == RunStatus.SENDING and run.lease_until is not None and run.lease_until < now)
        if not claimable:
            return None
        connector = session.get_one(Connector, run.connector_id)
        if not connector.enabled and not run.dry_run:
            run.status = RunStatus.FAILED.value
            run.error = "the connector was disabled before this run was sent"
            run.finished_at = now
            return None
        run.status = RunStatus.SENDING.value
        run.lease_until = now + LEASE
        run.attempts += 1
        run.started_at = run.started_at or now
        parsed = service.parse(connector)
        run.destination = describe(parsed.transport)
        if parsed.target.direction == "inbound":
            return Attempt(run.id, connector.id, parsed.target, parsed.transport, None, inbound=True)
        try:
            with session.begin_nested():
                built = build(session=session, clock=clock, connector=connector, run_id=run.id)
        except ExportError as exc:
            _fail(session, clock, connector, run, exc)
            return None
        except Exception as exc:  # a bug must fail the run loudly (e-mail), not loop silently in the worker
            log.exception("building an export failed", extra={"connector": connector.name, "run_id": run.id})
            _fail(session, clock, connector, run, ExportError(f"internal error while building the run: "
                                                              f"{type(exc).__name__}: {exc}", retryable=False))
            return None
        _store_built(run, built)
        nothing = not built.state_changes and (
            (parsed.target.direction == "api" and connector.content == "delta")
            or run.reason in ("schedule change", "publish"))
        if nothing:
            run.status = RunStatus.NOTHING.value
            run.finished_at = now
            run.lease_until = None
            run.detail = {"note": "nothing changed for this connector since its last successful run"}
            return None
        return Attempt(run.id, connector.id, parsed.target, parsed.transport, built)


def _send(prepared: Attempt) -> PushOutcome:
    built = prepared.built
    assert built is not None
    if prepared.target.direction == "api":
        transport = prepared.transport
        assert isinstance(transport, HttpTransport)
        calls: list[dict[str, Any]] = []
        try:
            with http_client() as client:
                return prepared.target.push(built.ctx, Http(transport, client, calls), built.send, built.rows)
        except ExportError as exc:
            return PushOutcome(calls=calls, error=exc)
        except Exception as exc:  # an answer we could not read: recorded and retried, never left hanging
            log.exception("export push failed unexpectedly", extra={"run_id": prepared.run_id})
            return PushOutcome(calls=calls, error=ExportError(f"{type(exc).__name__}: {exc}"))
    try:
        assert built.file_name is not None
        where = deliver_file(prepared.transport, built.file_name, built.payload)
    except ExportError as exc:
        return PushOutcome(error=exc)
    except Exception as exc:
        log.exception("export transfer failed unexpectedly", extra={"run_id": prepared.run_id})
        return PushOutcome(error=ExportError(f"{type(exc).__name__}: {exc}"))
    return PushOutcome(done=[(c, None) for c in built.state_changes], calls=[{"destination": where}])


def _apply_state(session: Session, clock: Clock, connector_id: int, done: list[tuple[Change, str | None]],
                 replace_all: bool, window: tuple[date, date] | None) -> None:
    now = clock.now()
    if replace_all:
        session.execute(delete(ExportState).where(ExportState.connector_id == connector_id))
        session.flush()
    elif window is not None:
        session.execute(delete(ExportState).where(ExportState.connector_id == connector_id,
                                                  or_(ExportState.on_date < window[0],
                                                      ExportState.on_date > window[1])))
    for change, remote_id in done:
        row = None if replace_all else session.get(ExportState, (connector_id, change.key))
        if change.action == "delete":
            if row is not None:
                session.delete(row)
            continue
        if row is None:
            row = ExportState(connector_id=connector_id, key=change.key)
            session.add(row)
        row.digest = digest(change.values)
        row.values = change.values
        row.remote_id = remote_id if remote_id is not None else change.remote_id
        row.on_date = change.on_date
        row.updated_at = now
    session.flush()


def _record(db: Database, clock: Clock, prepared: Attempt, outcome: PushOutcome) -> ExportRun:
    built = prepared.built
    assert built is not None
    with db.unit_of_work() as session:
        run = session.get_one(ExportRun, prepared.run_id)
        connector = session.get_one(Connector, prepared.connector_id)
        api = prepared.target.direction == "api"
        if api:
            run.payload = json.dumps({"calls": outcome.calls}, indent=2, default=str).encode()
            run.payload_sha256 = hashlib.sha256(run.payload).hexdigest()
            run.detail = {"calls": len(outcome.calls), "applied": len(outcome.done)}
        else:
            run.destination = outcome.calls[0]["destination"] if outcome.calls else run.destination
        if outcome.error is None or api:
            # API pushes keep what they managed (Graph ids); a file counts only once it is delivered.
            _apply_state(session, clock, connector.id, outcome.done, built.full_replace,
                         built.window if outcome.error is None else None)
            if built.period_start is not None:
                connector.state_period = built.period_start
        run.lease_until = None
        if outcome.error is None and not outcome.item_errors:
            _succeed(session, clock, connector, run)
        elif outcome.error is not None:
            _fail(session, clock, connector, run, outcome.error)
        else:
            run.problems = outcome.item_errors
            text = "; ".join(str(e["problem"]) for e in outcome.item_errors[:5])
            more = f" (and {len(outcome.item_errors) - 5} more)" if len(outcome.item_errors) > 5 else ""
            _fail(session, clock, connector, run, ExportError(
                f"{len(outcome.item_errors)} item(s) refused by the other side: {text}{more}", retryable=False))
        return run


def _succeed(session: Session, clock: Clock, connector: Connector, run: ExportRun) -> None:
    now = clock.now()
    run.status = RunStatus.SUCCEEDED.value
    run.finished_at = now
    run.error = None
    connector.last_success_at = now
    if connector.failing_since is not None:
        _notify(session, clock, connector, run, "recovered")
        connector.failing_since = None
        connector.last_alert_at = None
    _audit_run(session, clock, connector, run)


def _fail(session: Session, clock: Clock, connector: Connector, run: ExportRun, exc: ExportError) -> None:
    now = clock.now()
    history = (run.detail or {}).get("errors", [])
    run.detail = {**(run.detail or {}), "errors": [*history, {"attempt": run.attempts, "at": now.isoformat(),
                                                              "error": str(exc)}][-20:]}
    run.error = str(exc)[:4000]
    run.lease_until = None
    first = connector.failing_since is None
    if first:
        connector.failing_since = now
    if exc.retryable and run.attempts < connector.max_attempts:
        wait = backoff(run.attempts)
        if exc.retry_after is not None:
            wait = max(timedelta(seconds=exc.retry_after), timedelta(seconds=1))
        run.status = RunStatus.RETRYING.value
        run.next_attempt_at = now + wait
        jobs.schedule(session=session, clock=clock, kind=RETRY_TIMER, due_at=run.next_attempt_at,
                      params={"run_id": run.id}, key=f"export-run:{run.id}")
        log.warning("export attempt failed; will retry", extra={"connector": connector.name, "run_id": run.id,
                                                                "error": str(exc)})
        if first:
            _notify(session, clock, connector, run, "failing")
            run.detail = {**run.detail, "announced": True}
        return
    run.status = RunStatus.FAILED.value
    run.finished_at = now
    log.error("export run failed", extra={"connector": connector.name, "run_id": run.id, "error": str(exc)})
    # Said once per failing spell, again for a run whose "will retry" mail went out (its end is news),
    # and otherwise at most hourly while the connector keeps failing.
    if first or run.detail.get("announced") or connector.last_alert_at is None \
            or now - connector.last_alert_at >= ALERT_EVERY:
        _notify(session, clock, connector, run, "failed")
    _audit_run(session, clock, connector, run)


def _audit_run(session: Session, clock: Clock, connector: Connector, run: ExportRun) -> None:
    audit.record(session=session, clock=clock, actor=connector_actor(connector), action="exports.run",
                 object_type="connector", object_id=connector.id,
                 outcome="success" if run.status == RunStatus.SUCCEEDED else "failure",
                 detail={"run_id": run.id, "status": run.status, "reason": run.reason, "rows": run.row_count,
                         "destination": run.destination, "file_name": run.file_name, "sha256": run.payload_sha256,
                         "attempts": run.attempts, "error": run.error})


def _notify(session: Session, clock: Clock, connector: Connector, run: ExportRun, kind: str) -> None:
    """E-mail the connector's administrators through the outbox (sent after commit by the worker)."""
    now = clock.now()
    local = now.astimezone(zone(connector.timezone))
    if kind == "recovered":
        subject = f"carerelay connector {connector.name}: working again"
        lines = [f"Run {run.id} of connector {connector.name} ({connector.target}) succeeded at "
                 f"{local:%Y-%m-%d %H:%M %Z}, after failing since "
                 f"{connector.failing_since.astimezone(zone(connector.timezone)):%Y-%m-%d %H:%M %Z}."
                 if connector.failing_since else f"Run {run.id} succeeded.",
                 "It carried everything the failed runs had not delivered."]
    else:
        subject = f"carerelay connector {connector.name}: {'run failed' if kind == 'failed' else 'transfer failing'}"
        lines = [f"Connector: {connector.name} ({connector.target})", f"Run: {run.id} ({run.reason})",
                 f"Destination: {run.destination or '-'}", f"When: {local:%Y-%m-%d %H:%M %Z}",
                 f"Attempt: {run.attempts} of {connector.max_attempts}", "", f"Reason: {run.error}", ""]
        if kind == "failing" and run.next_attempt_at is not None:
            retry_at = run.next_attempt_at.astimezone(zone(connector.timezone))
            lines.append(f"carerelay will try again at {retry_at:%H:%M %Z}; nothing is lost: the next "
                         "successful run sends everything still missing.")
        else:
            lines.append("carerelay gave up on this run. The next run (or 'carerelay connector run "
                         f"{connector.id}') sends everything still missing once the cause is fixed.")
        if run.problems:
            lines += ["", "Refused items:"] + [f"  - {p.get('problem')}" for p in run.problems[:20]]
        lines += ["", f"History: carerelay connector history {connector.id}",
                  f"What was sent: carerelay connector download {run.id}"]
    for address in service.admin_addresses(session, connector):
        notifications.enqueue(session=session, clock=clock, person_id=None, channel="email", address=address,
                              subject=subject, body="\n".join(lines))
    connector.last_alert_at = now


# -- inbound ------------------------------------------------------------------------------------

def _import(db: Database, clock: Clock, prepared: Attempt) -> ExportRun:
    target = prepared.target
    assert isinstance(target, DemographicImport)
    with db.read_only() as session:
        connector = session.get_one(Connector, prepared.connector_id)
        options = service.parse(connector).options
    try:
        if isinstance(prepared.transport, FolderTransport):
            found = read_folder(prepared.transport, options.pattern)
        else:
            found = fetch_sftp(prepared.transport, options.pattern)
        error = None
    except ExportError as exc:
        found, error = None, exc
    except Exception as exc:
        log.exception("reading the import file failed unexpectedly", extra={"run_id": prepared.run_id})
        found, error = None, ExportError(f"{type(exc).__name__}: {exc}")
    with db.unit_of_work() as session:
        run = session.get_one(ExportRun, prepared.run_id)
        connector = session.get_one(Connector, prepared.connector_id)
        if error is not None:
            _fail(session, clock, connector, run, error)
            return run
        run.lease_until = None
        if found is None:
            run.status = RunStatus.NOTHING.value
            run.finished_at = clock.now()
            run.detail = {"note": f"no file matching {options.pattern} in {run.destination}"}
            return run
        name, data = found
        run.file_name, run.payload, run.content_type = name, data, "text/csv"
        run.payload_sha256 = hashlib.sha256(data).hexdigest()
        last = session.execute(select(ExportRun.payload_sha256).where(
            ExportRun.connector_id == connector.id, ExportRun.status == RunStatus.SUCCEEDED.value,
            ExportRun.dry_run.is_(False)).order_by(ExportRun.id.desc()).limit(1)).scalar_one_or_none()
        if last == run.payload_sha256 and not run.dry_run:
            run.status = RunStatus.NOTHING.value
            run.finished_at = clock.now()
            run.detail = {"note": f"{name} was already imported (same content)"}
            return run
        assert connector.person_key is not None
        try:
            with session.begin_nested() as savepoint:
                report = target.apply(session=session, clock=clock, actor=connector_actor(connector),
                                      key_field=connector.person_key, options=options, data=data)
                if run.dry_run:
                    savepoint.rollback()
        except ExportError as exc:
            _fail(session, clock, connector, run, exc)
            return run
        except Exception as exc:
            log.exception("applying the import failed", extra={"run_id": run.id})
            _fail(session, clock, connector, run, ExportError(f"internal error while importing: "
                                                              f"{type(exc).__name__}: {exc}", retryable=False))
            return run
        run.row_count = report.rows
        run.detail = report.summary()
        run.problems = report.unmatched + report.problems
        if run.dry_run:
            run.status = RunStatus.DRY_RUN.value
            run.finished_at = clock.now()
        else:
            _succeed(session, clock, connector, run)
        return run


def queue_dry_import(*, session: Session, clock: Clock, actor: Actor, connector_id: int) -> ExportRun:
    """A dry run of an import reads the folder, so the worker (or the CLI) does it outside the request."""
    service.check_export_admin(actor)
    connector = service.get_connector(session=session, connector_id=connector_id)
    return _new_run(session, clock, connector, "manual", actor.username, dry_run=True)
