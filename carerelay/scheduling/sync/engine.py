"""One sync run: pull the next 48 hours, map ids, write slots, report what could not be done.

Rules, in the order they apply to each vendor shift:

1. Unmapped person or assignment ids are reported on the run (``unmapped``) and skipped.
2. A slot this source wrote before (same external key) follows the vendor: a new person is a
   reassignment, checked, change-logged and audited like a scheduler's swap.
3. A hand-entered slot (``manual`` or ``csv``) for the same assignment and date wins: the vendor
   shift is skipped and reported. Hand-entered slots are never overwritten or removed.
4. Otherwise a slot is created through ``build_slot`` (membership, time off, double booking, DST)
   in the department schedule covering the date; the vendor's times must equal the assignment's,
   or the shift is reported instead of being silently re-timed.
5. Slots this source wrote that start inside the window but the vendor no longer lists are removed.

Each shift runs in its own savepoint, so one refusal never leaves half a change. A vendor failure
fails the run and changes nothing.

Every 15 minutes: the worker in each node runs ``sync_due`` each minute. It claims due sources
(SKIP LOCKED, so one node pulls each), asks the vendor with no transaction open, and records each
pull in a transaction of its own; ``carerelay schedule sync --due`` does the same from a terminal.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx2
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError, Forbidden, Invalid, NotFound
from carerelay.directory.models import Department, Person, Role
from carerelay.scheduling import service
from carerelay.scheduling.models import (
    HAND_ENTERED,
    Assignment,
    Slot,
    SlotSource,
    SyncAssignmentMap,
    SyncPersonMap,
    SyncRun,
    SyncSource,
)
from carerelay.scheduling.sync.amion import AmionAdapter
from carerelay.scheduling.sync.base import Adapter, ExternalShift, VendorError
from carerelay.scheduling.sync.qgenda import QGendaAdapter
from carerelay.scheduling.sync.shiftadmin import ShiftAdminAdapter
from carerelay.scheduling.timeline import slot_span, zone

log = logging.getLogger("carerelay.scheduling.sync")

WINDOW = timedelta(hours=48)
INTERVAL = timedelta(minutes=15)
ADAPTERS: dict[str, Adapter] = {SlotSource.AMION.value: AmionAdapter(), SlotSource.QGENDA.value: QGendaAdapter(),
                                SlotSource.SHIFTADMIN.value: ShiftAdminAdapter()}


def sync_actor(source: SyncSource) -> Actor:
    return Actor(person_id=None, username=f"sync:{source.vendor}:{source.id}", roles=frozenset({"system"}))


def check_sync_admin(actor: Actor) -> None:
    """Sync sources and their id maps are integration settings, kept by administrators."""
    if not actor.has_any(Role.SYSTEM_ADMIN.value, Role.INTEGRATION_ADMIN.value, "system"):
        raise Forbidden("only system or integration administrators manage scheduler syncs")


def get_source(*, session: Session, source_id: int) -> SyncSource:
    source = session.get(SyncSource, source_id)
    if source is None:
        raise NotFound(f"no sync source {source_id}")
    return source


def create_source(
    *, session: Session, clock: Clock, actor: Actor, vendor: str, name: str, department_id: int, base_url: str,
    account: str, username: str | None = None, secret_env: str | None = None,
) -> SyncSource:
    if vendor not in ADAPTERS:
        raise Invalid(f"vendor must be one of {', '.join(sorted(ADAPTERS))}", field="vendor")
    check_sync_admin(actor)
    if session.get(Department, department_id) is None:
        raise Invalid(f"no department {department_id}", field="department_id")
    source = SyncSource(vendor=vendor, name=name, department_id=department_id, base_url=base_url, account=account,
                        username=username, secret_env=secret_env, active=True, created_at=clock.now())
    session.add(source)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.create_sync_source",
                 object_type="sync_source", object_id=source.id,
                 detail={"vendor": vendor, "department_id": department_id, "base_url": base_url})
    return source


def map_person(*, session: Session, clock: Clock, actor: Actor, source_id: int, external_id: str,
               person_id: int) -> SyncPersonMap:
    check_sync_admin(actor)
    get_source(session=session, source_id=source_id)
    if session.get(Person, person_id) is None:
        raise Invalid(f"no person {person_id}", field="person_id")
    row = session.get(SyncPersonMap, (source_id, external_id)) or SyncPersonMap(source_id=source_id,
                                                                                 external_id=external_id)
    row.person_id = person_id
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.map_sync_person",
                 object_type="sync_source", object_id=source_id,
                 detail={"external_id": external_id, "person_id": person_id})
    return row


def map_assignment(*, session: Session, clock: Clock, actor: Actor, source_id: int, external_id: str,
                   assignment_id: int) -> SyncAssignmentMap:
    check_sync_admin(actor)
    source = get_source(session=session, source_id=source_id)
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.department_id != source.department_id:
        raise Invalid(f"no assignment {assignment_id} in the source's department", field="assignment_id")
    row = session.get(SyncAssignmentMap, (source_id, external_id)) or SyncAssignmentMap(
        source_id=source_id, external_id=external_id)
    row.assignment_id = assignment_id
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.map_sync_assignment",
                 object_type="sync_source", object_id=source_id,
                 detail={"external_id": external_id, "assignment_id": assignment_id})
    return row


def due_sources(*, session: Session, now: datetime) -> list[SyncSource]:
    """Active sources not pulled in the last 15 minutes (a read; the worker takes them with claim_due)."""
    query = select(SyncSource).where(SyncSource.active.is_(True)).order_by(SyncSource.id)
    return [s for s in session.execute(query).scalars() if s.last_run_at is None or s.last_run_at <= now - INTERVAL]


def list_runs(*, session: Session, source_id: int, limit: int = 50) -> list[SyncRun]:
    return list(session.execute(select(SyncRun).where(SyncRun.source_id == source_id)
                                .order_by(SyncRun.id.desc()).limit(limit)).scalars())


def list_sources(*, session: Session) -> list[SyncSource]:
    return list(session.execute(select(SyncSource).order_by(SyncSource.id)).scalars())


@dataclass(frozen=True)
class Pull:
    """What one source's vendor answered (or why it did not), fetched outside any transaction."""

    source_id: int
    started_at: datetime
    shifts: list[ExternalShift] | None
    error: str | None = None


def _detached(source: SyncSource) -> tuple[SyncSource, str]:
    """A copy of the source's settings (and its zone) that outlives the session, for fetching."""
    copy = SyncSource(id=source.id, vendor=source.vendor, name=source.name, department_id=source.department_id,
                      base_url=source.base_url, account=source.account, username=source.username,
                      secret_env=source.secret_env, active=source.active)
    return copy, source.department.site.timezone


def fetch(*, source: SyncSource, timezone: str, http: httpx2.Client, now: datetime) -> Pull:
    """Ask the vendor for the next 48 hours. Never raises for a vendor problem: the Pull says why."""
    secret = os.environ.get(source.secret_env) if source.secret_env else None
    try:
        shifts = ADAPTERS[source.vendor].fetch(http=http, source=source, secret=secret, start=now,
                                               end=now + WINDOW, timezone=timezone)
    except (VendorError, httpx2.HTTPError, ValueError, KeyError) as exc:
        return Pull(source.id, now, None, f"{type(exc).__name__}: {exc}"[:1000])
    return Pull(source.id, now, shifts)


def record_pull(*, session: Session, clock: Clock, pull: Pull) -> SyncRun:
    """Apply what was fetched (the rules in the module docstring) and record the run, audited."""
    source = get_source(session=session, source_id=pull.source_id)
    actor = sync_actor(source)
    now = pull.started_at
    run = SyncRun(source_id=source.id, started_at=now, window_end=now + WINDOW, status="ok", fetched=0, created=0,
                  updated=0, removed=0, unmapped=[], problems=[])
    source.last_run_at = max(source.last_run_at or now, now)
    if pull.shifts is None:
        run.status = "failed"
        run.error = pull.error
    else:
        _apply(session, clock, actor, source, run, [s for s in pull.shifts if s.starts_at < run.window_end
                                                    and s.ends_at > now])
        if run.unmapped or run.problems:
            run.status = "partial"
    session.add(run)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scheduling.sync", object_type="sync_source",
                 object_id=source.id, outcome="success" if run.status != "failed" else "failure",
                 detail={"run_id": run.id, "status": run.status, "fetched": run.fetched, "created": run.created,
                         "updated": run.updated, "removed": run.removed, "unmapped": len(run.unmapped),
                         "problems": len(run.problems), "error": run.error})
    if run.status == "failed":
        log.warning("scheduler sync failed", extra={"source_id": source.id, "vendor": source.vendor,
                                                    "error": run.error})
    return run


def run_sync(*, session: Session, clock: Clock, source_id: int, http: httpx2.Client) -> SyncRun:
    """Pull one source now, inside the caller's unit of work (the CLI and the admin route)."""
    source = get_source(session=session, source_id=source_id)
    copy, timezone = _detached(source)
    source.last_run_at = clock.now()
    return record_pull(session=session, clock=clock,
                       pull=fetch(source=copy, timezone=timezone, http=http, now=clock.now()))


def claim_due(*, session: Session, now: datetime) -> list[tuple[SyncSource, str]]:
    """Take the sources due now, each for one node only (SKIP LOCKED on PostgreSQL): marking them
    pulled now is the claim, so another node, or this one a minute later, leaves them alone."""
    query = (select(SyncSource).where(SyncSource.active.is_(True),
                                      or_(SyncSource.last_run_at.is_(None), SyncSource.last_run_at <= now - INTERVAL))
             .order_by(SyncSource.id).with_for_update(skip_locked=True, of=SyncSource))
    claimed = []
    for source in session.execute(query).unique().scalars():
        source.last_run_at = now
        claimed.append(_detached(source))
    session.flush()
    return claimed


def sync_due(*, db: Database, clock: Clock, http: httpx2.Client) -> list[SyncRun]:
    """What the worker in every node runs each minute: claim the due sources in one short
    transaction, ask each vendor with no transaction open (a slow vendor holds no lock), then record
    each pull in its own transaction."""
    with db.unit_of_work() as session:
        claimed = claim_due(session=session, now=clock.now())
    runs = []
    for source, timezone in claimed:
        pull = fetch(source=source, timezone=timezone, http=http, now=clock.now())
        with db.unit_of_work() as session:
            runs.append(record_pull(session=session, clock=clock, pull=pull))
    return runs


def _apply(session: Session, clock: Clock, actor: Actor, source: SyncSource, run: SyncRun,
           shifts: list[ExternalShift]) -> None:
    people = {m.external_id: m.person_id for m in session.execute(
        select(SyncPersonMap).where(SyncPersonMap.source_id == source.id)).scalars()}
    assignments = {m.external_id: m.assignment_id for m in session.execute(
        select(SyncAssignmentMap).where(SyncAssignmentMap.source_id == source.id)).scalars()}
    unmapped: dict[tuple[str, str], dict[str, Any]] = {}
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    run.fetched = len(shifts)
    for shift in shifts:
        key = f"{source.id}:{shift.key}"
        seen.add(key)
        person_id = people.get(shift.person_id)
        assignment_id = assignments.get(shift.assignment_id)
        if person_id is None:
            unmapped[("person", shift.person_id)] = {"kind": "person", "id": shift.person_id,
                                                     "name": shift.person_name}
        if assignment_id is None:
            unmapped[("assignment", shift.assignment_id)] = {"kind": "assignment", "id": shift.assignment_id,
                                                             "name": shift.assignment_name}
        if person_id is None or assignment_id is None:
            continue
        try:
            with session.begin_nested():
                outcome = _apply_one(session, clock, actor, source, key, shift, person_id, assignment_id)
        except CarerelayError as exc:
            problems.append({"key": shift.key, "field": exc.field, "problem": exc.message})
            continue
        if outcome == "created":
            run.created += 1
        elif outcome == "updated":
            run.updated += 1
        elif outcome is not None:
            problems.append({"key": shift.key, "field": None, "problem": outcome})
    stale = session.execute(select(Slot).where(Slot.external_key.like(f"{source.id}:%"),
                                               Slot.source == source.vendor,
                                               Slot.starts_at >= run.started_at,
                                               Slot.starts_at < run.window_end)).scalars().all()
    for slot in stale:
        if slot.external_key not in seen:
            service.remove_slot(session=session, clock=clock, actor=actor, slot_id=slot.id)
            run.removed += 1
    run.unmapped = list(unmapped.values())
    run.problems = problems


def _apply_one(session: Session, clock: Clock, actor: Actor, source: SyncSource, key: str, shift: ExternalShift,
               person_id: int, assignment_id: int) -> str | None:
    """'created', 'updated', None (nothing to do) or the reason the shift was not applied."""
    existing = session.execute(select(Slot).where(Slot.external_key == key)).scalar_one_or_none()
    if existing is not None:
        if existing.person_id == person_id:
            return None
        current = service.get_schedule(session=session, schedule_id=existing.schedule_id)
        service.reassign_slot(session=session, clock=clock, actor=actor, slot=existing, schedule=current,
                              fields=service.SlotFields(person_id=person_id, notes=existing.notes),
                              action="slot.sync")
        return "updated"
    assignment = session.get(Assignment, assignment_id)
    assert assignment is not None
    tz = source.department.site.timezone
    on_date = shift.starts_at.astimezone(zone(tz)).date()
    hand = session.execute(select(Slot.id).where(Slot.assignment_id == assignment_id, Slot.on_date == on_date,
                                                 Slot.source.in_(HAND_ENTERED))).scalars().first()
    if hand is not None:
        return f"slot {hand} ({assignment.code} on {on_date}) was entered by hand and is kept"
    span = slot_span(on_date, assignment.start_time, assignment.end_time, tz)
    if (span.starts_at, span.ends_at) != (shift.starts_at, shift.ends_at):
        return (f"vendor times {shift.starts_at:%Y-%m-%d %H:%M}Z–{shift.ends_at:%H:%M}Z differ from "
                f"{assignment.code} ({assignment.start_time:%H:%M}–{assignment.end_time:%H:%M} {tz})")
    schedule = service.find_schedule(session=session, department_id=source.department_id, on_date=on_date)
    if schedule is None:
        return f"no schedule of {source.department.code} covers {on_date}"
    service.build_slot(session=session, clock=clock, actor=actor, schedule=schedule, assignment=assignment,
                       on_date=on_date, fields=service.SlotFields(person_id=person_id), source=source.vendor,
                       external_key=key)
    return "created"
