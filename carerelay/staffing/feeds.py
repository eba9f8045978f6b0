"""Feeds of assignments from other systems, and the one pipeline every feed item goes through.

A feed is an SFTP folder of CSV files (``sftp_csv``), an assignment system polled over REST
(``rest``) or one that pushes changes to us (``push``). Each delivery (a file, a poll, a push) is a
run: its items are matched (person on the feed's id field, role through the feed's role map, unit /
room / bed), checked, and applied through ``service.apply`` as source ``file`` or ``sync``.

All or nothing: a run with any refused item applies nothing unless the feed says
``apply_valid_rows``; refused items are listed with their row (or vendor id) and field either way.
A snapshot run (files and polls, unless configured ``"mode": "changes"``) is the whole truth for the
units it names: this feed's assignments there that it no longer lists end — but only when every
item was good, since a refused row may be the one that would have kept an assignment.

A failed or rejected run raises an alert for the integration admins (once per file or error).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import CarerelayError, Forbidden, Invalid, NotFound, Unauthenticated
from carerelay.directory.service import UNIQUE_PERSON_FIELDS, find_person_by
from carerelay.patients import service as patients
from carerelay.staffing import roles, service
from carerelay.staffing.models import FeedKind, Source, StaffAssignment, StaffingFeed, StaffingFeedRun
from carerelay.staffing.shifts import UnitSettings, settings_for

log = logging.getLogger("carerelay.staffing")

INTEGRATION_ADMINS = "group:INTEGRATION-ADMINS"
DEFAULT_INTERVAL_MINUTES = 30


def feed_actor(feed: StaffingFeed) -> Actor:
    return Actor(person_id=None, username=f"staffing-feed:{feed.name}", roles=frozenset({"system"}))


def check_feed_admin(actor: Actor) -> None:
    if not actor.has_any(*service.ADMINS):
        raise Forbidden("only system or integration administrators manage staffing feeds")


# ---------------------------------------------------------------- feed settings


SFTP_KEYS = {"host", "port", "username", "remote_dir", "pattern", "known_host_key", "client_key_file",
             "secret_env", "archive_dir", "datetime_format", "mode", "units", "encoding", "delimiter"}
REST_KEYS = {"base_url", "facility", "units", "secret_env", "window_hours", "mode", "page_size"}
PUSH_KEYS = {"units"}


def _check_config(kind: str, adapter: str | None, config: dict[str, Any]) -> None:
    allowed = {FeedKind.SFTP_CSV.value: SFTP_KEYS, FeedKind.REST.value: REST_KEYS, FeedKind.PUSH.value: PUSH_KEYS}
    unknown = sorted(set(config) - allowed[kind])
    if unknown:
        raise Invalid(f"unknown setting {unknown[0]!r} for a {kind} feed; known: {', '.join(sorted(allowed[kind]))}",
                      field=f"config.{unknown[0]}")
    if kind == FeedKind.SFTP_CSV:
        for key in ("host", "username", "remote_dir", "known_host_key"):
            if not config.get(key):
                raise Invalid(f"an SFTP feed needs {key}", field=f"config.{key}")
        if not config.get("client_key_file") and not config.get("secret_env"):
            raise Invalid("give client_key_file or secret_env (the environment variable holding the password)",
                          field="config.client_key_file")
    if kind == FeedKind.REST:
        from carerelay.staffing.sync.engine import ADAPTERS

        if adapter not in ADAPTERS:
            raise Invalid(f"adapter must be one of {', '.join(sorted(ADAPTERS))}", field="adapter")
        if not config.get("base_url"):
            raise Invalid("a REST feed needs base_url", field="config.base_url")
        if not config.get("units"):
            raise Invalid("list the units to poll (unit codes)", field="config.units")
    if config.get("mode", "snapshot") not in ("snapshot", "changes"):
        raise Invalid("mode is snapshot or changes", field="config.mode")


FILE_FIELDS = ("person", "unit", "room", "bed", "role", "start", "end", "mrn")
REQUIRED_FIELDS = ("person", "unit", "role")


def _check_column_map(column_map: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(column_map) - set(FILE_FIELDS))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}; map any of {', '.join(FILE_FIELDS)}",
                      field=f"column_map.{unknown[0]}")
    merged = {f: f for f in FILE_FIELDS} | {k: v.strip() for k, v in column_map.items()}
    headers = [h.lower() for h in merged.values()]
    if len(set(headers)) != len(headers):
        raise Invalid("two fields are mapped to the same column", field="column_map")
    return merged


def _check_role_map(role_map: dict[str, str]) -> dict[str, str]:
    checked = {}
    for value, role in role_map.items():
        checked[value.strip().lower()] = roles.check_role(role, field=f"role_map.{value}").value
    return checked


def create_feed(*, session: Session, clock: Clock, actor: Actor, name: str, kind: str, adapter: str | None = None,
                config: dict[str, Any] | None = None, column_map: dict[str, str] | None = None,
                role_map: dict[str, str] | None = None, id_field: str = "unique_id", apply_valid_rows: bool = False,
                interval_minutes: int = DEFAULT_INTERVAL_MINUTES) -> StaffingFeed:
    check_feed_admin(actor)
    if kind not in {k.value for k in FeedKind}:
        raise Invalid(f"kind must be one of {', '.join(k.value for k in FeedKind)}", field="kind")
    if id_field not in UNIQUE_PERSON_FIELDS:
        raise Invalid(f"id_field must be one of {', '.join(UNIQUE_PERSON_FIELDS)}", field="id_field")
    if not 1 <= interval_minutes <= 24 * 60:
        raise Invalid("between 1 and 1440 minutes", field="interval_minutes")
    settings = dict(config or {})
    _check_config(kind, adapter, settings)
    for code in settings.get("units", []):
        service.get_unit(session, code, field="config.units")
    if session.execute(select(StaffingFeed.id).where(StaffingFeed.name == name)).first():
        raise Invalid(f"a staffing feed named {name!r} exists", field="name")
    now = clock.now()
    feed = StaffingFeed(name=name, kind=kind, adapter=adapter if kind == FeedKind.REST else None, config=settings,
                        column_map=_check_column_map(column_map or {}), role_map=_check_role_map(role_map or {}),
                        id_field=id_field, apply_valid_rows=apply_valid_rows, interval_minutes=interval_minutes,
                        active=True, next_run_at=now if kind != FeedKind.PUSH else None, created_at=now,
                        created_by=actor.username)
    session.add(feed)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="staffing.create_feed", object_type="staffing_feed",
                 object_id=feed.id, detail={"name": name, "kind": kind, "adapter": feed.adapter, "config": settings,
                                            "id_field": id_field, "apply_valid_rows": apply_valid_rows})
    return feed


def get_feed(*, session: Session, feed_id: int) -> StaffingFeed:
    feed = session.get(StaffingFeed, feed_id)
    if feed is None:
        raise NotFound(f"no staffing feed {feed_id}")
    return feed


def list_feeds(*, session: Session) -> list[StaffingFeed]:
    return list(session.execute(select(StaffingFeed).order_by(StaffingFeed.id)).scalars())


def set_active(*, session: Session, clock: Clock, actor: Actor, feed_id: int, active: bool) -> StaffingFeed:
    check_feed_admin(actor)
    feed = get_feed(session=session, feed_id=feed_id)
    feed.active = active
    audit.record(session=session, clock=clock, actor=actor, action="staffing.feed_active", object_type="staffing_feed",
                 object_id=feed.id, detail={"active": active})
    return feed


def mark_due(*, session: Session, clock: Clock, actor: Actor, feed_id: int) -> StaffingFeed:
    check_feed_admin(actor)
    feed = get_feed(session=session, feed_id=feed_id)
    if feed.kind == FeedKind.PUSH:
        raise Invalid("a push feed sends to us; there is nothing to fetch", field="feed_id")
    if not feed.active:
        raise Invalid(f"feed {feed.name} is inactive", field="feed_id")
    feed.next_run_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="staffing.feed_run_requested",
                 object_type="staffing_feed", object_id=feed.id)
    return feed


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(*, session: Session, clock: Clock, actor: Actor, feed_id: int) -> str:
    """A new bearer token for a push feed (shown once; only its SHA-256 is kept; the old one stops)."""
    check_feed_admin(actor)
    feed = get_feed(session=session, feed_id=feed_id)
    if feed.kind != FeedKind.PUSH:
        raise Invalid("only push feeds take a token", field="feed_id")
    token = "crs_" + secrets.token_urlsafe(32)
    feed.token_hash = _hash(token)
    audit.record(session=session, clock=clock, actor=actor, action="staffing.feed_token", object_type="staffing_feed",
                 object_id=feed.id)
    return token


def authenticate_push(*, session: Session, token: str) -> StaffingFeed:
    feed = session.execute(select(StaffingFeed).where(StaffingFeed.token_hash == _hash(token))).scalar_one_or_none()
    if feed is None or not feed.active or feed.kind != FeedKind.PUSH:
        raise Unauthenticated("unknown or inactive staffing feed token")
    return feed


def list_runs(*, session: Session, feed_id: int, limit: int = 50) -> list[StaffingFeedRun]:
    return list(session.execute(select(StaffingFeedRun).where(StaffingFeedRun.feed_id == feed_id)
                                .order_by(StaffingFeedRun.id.desc()).limit(limit)).scalars())


def seen_file(*, session: Session, feed_id: int, name: str, sha256: str) -> bool:
    return session.execute(select(StaffingFeedRun.id).where(
        StaffingFeedRun.feed_id == feed_id, StaffingFeedRun.file_name == name,
        StaffingFeedRun.file_sha256 == sha256)).first() is not None


def claim_due(*, session: Session, clock: Clock, feed_id: int) -> bool:
    """Take a due feed for this node: an atomic compare-and-set of ``next_run_at``, so two nodes polling
    together never both fetch it."""
    now = clock.now()
    feed = get_feed(session=session, feed_id=feed_id)
    result = session.execute(
        update(StaffingFeed).where(StaffingFeed.id == feed_id, StaffingFeed.active.is_(True),
                                   StaffingFeed.next_run_at.is_not(None), StaffingFeed.next_run_at <= now)
        .values(next_run_at=now + timedelta(minutes=feed.interval_minutes), last_run_at=now)
        .execution_options(synchronize_session=False))
    session.expire(feed)
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def due_feeds(*, session: Session, now: datetime) -> list[int]:
    return list(session.execute(select(StaffingFeed.id).where(
        StaffingFeed.active.is_(True), StaffingFeed.kind != FeedKind.PUSH.value,
        StaffingFeed.next_run_at.is_not(None), StaffingFeed.next_run_at <= now).order_by(StaffingFeed.id)).scalars())


# ---------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class FeedItem:
    """One assignment as a feed states it, before matching. ``fields`` names, per our field, the
    feed's own name for it (a file's column, a vendor's JSON key), for error messages."""

    where: str  # "row 3", "assignment A-77"
    row: int | None
    person: str
    unit: str
    role: str
    room: str = ""
    bed: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    key: str | None = None
    mrn: str = ""
    action: str = "upsert"  # or "end" (push)
    fields: dict[str, str] = field(default_factory=dict)
    problem: tuple[str, str] | None = None  # (field, message) found while parsing


@dataclass
class RunReport:
    run: StaffingFeedRun
    assignments: list[StaffAssignment] = field(default_factory=list)


OUR_FIELD = {"ends_at": "end", "starts_at": "start", "person_id": "person"}
"""Service field names as the feed's fields are called (then mapped to the feed's own column names)."""


class ItemRefused(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


def start_run(session: Session, clock: Clock, feed: StaffingFeed, trigger: str, *, file_name: str | None = None,
              file_sha256: str | None = None) -> StaffingFeedRun:
    run = StaffingFeedRun(feed_id=feed.id, trigger=trigger, started_at=clock.now(), status="ok", file_name=file_name,
                          file_sha256=file_sha256, rows=0, applied=0, unchanged=0, ended=0, conflicts=0, errors=[],
                          warnings=[])
    session.add(run)
    session.flush()
    feed.last_run_at = run.started_at
    return run


def fail_run(session: Session, clock: Clock, feed: StaffingFeed, run: StaffingFeedRun, error: str) -> None:
    """The delivery could not be fetched or read at all (the server refused, the answer made no sense)."""
    run.status, run.error = "failed", error[:2000]
    _finish(session, clock, feed, run)


def finish_rejected(session: Session, clock: Clock, feed: StaffingFeed, run: StaffingFeedRun) -> None:
    """Refused whole before any item was tried (a wrong header): ``run.errors`` says why."""
    run.status = "rejected"
    _finish(session, clock, feed, run)


def _refusal(item: FeedItem, field_name: str, message: str) -> dict[str, Any]:
    column = item.fields.get(field_name, field_name)
    return {"row": item.row, "where": item.where, "field": column, "message": message}


def _proposal(session: Session, clock: Clock, feed: StaffingFeed, run: StaffingFeedRun, item: FeedItem,
              source: str, origin: str) -> tuple[service.Proposal, UnitSettings]:
    if item.problem is not None:
        raise ItemRefused(*item.problem)
    if not item.person:
        raise ItemRefused("person", "empty")
    person = find_person_by(session=session, field=feed.id_field, value=item.person)
    if person is None:
        raise ItemRefused("person", f"no person with {feed.id_field} {item.person!r}")
    if not person.active:
        raise ItemRefused("person", f"{person.display_name} ({item.person}) is inactive")
    mapped = feed.role_map.get(item.role.strip().lower())
    role = roles.find_role(mapped or item.role)
    if role is None:
        raise ItemRefused("role", f"unknown role {item.role!r}" + (
            "; add it to the feed's role_map" if not feed.role_map else f" (role_map has {', '.join(feed.role_map)})"))
    units = feed.config.get("units")
    if units and item.unit not in units:
        raise ItemRefused("unit", f"unit {item.unit!r} is not one of this feed's units ({', '.join(units)})")
    try:
        target = service.check_target(session, unit=item.unit, room=item.room, bed=item.bed, role=role)
        settings = settings_for(session, target.unit)
        start, end = service.check_window(settings, clock.now(), item.starts_at, item.ends_at)
    except Invalid as exc:
        raise ItemRefused(OUR_FIELD.get(exc.field or "", exc.field or "row"), exc.message) from None
    return service.Proposal(target=target, person=person, role=role, starts_at=start, ends_at=end, source=source,
                            origin=origin, batch=f"run:{run.id}", feed_id=feed.id, external_key=item.key), settings


def _census_warning(session: Session, item: FeedItem) -> str | None:
    if not item.mrn or not item.bed:
        return None
    patient = patients.patient_in_bed(session=session, unit_code=item.unit, room=item.room, bed=item.bed)
    if patient is None:
        return f"the file has MRN {item.mrn} in {item.unit}-{item.room}-{item.bed}; the ADT census has no one there"
    if patient.mrn != item.mrn:
        return (f"the file has MRN {item.mrn} in {item.unit}-{item.room}-{item.bed}; the ADT census has "
                f"MRN {patient.mrn} (ADT is kept)")
    return None


def apply_items(*, session: Session, clock: Clock, feed: StaffingFeed, run: StaffingFeedRun, items: Sequence[FeedItem],
                source: str, describe: Callable[[FeedItem], str], snapshot_units: Sequence[str] = (),
                snapshot_until: datetime | None = None, on_item: Callable[[int], None] | None = None) -> RunReport:
    """Apply a run's items (module docstring). ``describe`` gives each item's origin for reasons.

    Counts and findings are kept in Python until the end: rolling the run's savepoint back (a
    rejected delivery) must not take the report of why with it."""
    actor = feed_actor(feed)
    report = RunReport(run)
    notices = service.Notices()
    counts = {"applied": 0, "unchanged": 0, "conflicts": 0, "ended": 0}
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    whole = session.begin_nested()
    seen: set[int] = set()
    for n, item in enumerate(items, start=1):
        try:
            with session.begin_nested():
                if item.action == "end":
                    counts["ended"] += _end_by_key(session, clock, actor, feed, item)
                else:
                    proposal, settings = _proposal(session, clock, feed, run, item, source, describe(item))
                    change = service.apply(session=session, clock=clock, actor=actor, proposal=proposal,
                                           settings=settings, notices=notices)
                    if change.outcome == "refused":
                        where = change.field_name or "row"
                        raise ItemRefused(OUR_FIELD.get(where, where), change.message)
                    if change.assignment is not None:
                        seen.add(change.assignment.id)
                    if change.outcome == "created" and change.assignment is not None:
                        counts["applied"] += 1
                        report.assignments.append(change.assignment)
                    elif change.outcome in ("unchanged", "past"):
                        counts["unchanged"] += 1
                    if change.conflicts:
                        counts["conflicts"] += len(change.conflicts)
                        warnings.append({"row": item.row, "where": item.where, "field": None,
                                         "message": "; ".join(c.message for c in change.conflicts)})
                    warning = _census_warning(session, item)
                    if warning:
                        warnings.append({"row": item.row, "where": item.where, "field": item.fields.get("mrn", "mrn"),
                                         "message": warning})
        except ItemRefused as exc:
            errors.append(_refusal(item, exc.field_name, exc.message))
        except CarerelayError as exc:
            errors.append(_refusal(item, OUR_FIELD.get(exc.field or "", exc.field or "row"), exc.message))
        if on_item is not None:
            on_item(n)
    run.rows = len(items)
    if errors and not feed.apply_valid_rows:
        whole.rollback()
        run.status, run.errors = "rejected", errors
        run.warnings = [w for w in warnings if w["field"] is not None]
        report.assignments = []
        _finish(session, clock, feed, run)
        return report
    whole.commit()
    if snapshot_units and not errors:
        counts["ended"] += _end_missing(session, clock, actor, feed, run, snapshot_units, seen, snapshot_until)
    elif snapshot_units:
        warnings.append({"row": None, "where": "run", "field": None,
                         "message": "some items were refused, so assignments missing from this delivery were not "
                                    "ended"})
    run.applied, run.unchanged, run.conflicts, run.ended = (counts["applied"], counts["unchanged"],
                                                            counts["conflicts"], counts["ended"])
    run.errors, run.warnings = errors, warnings
    run.status = "partial" if errors else "ok"
    if notices.conflicts or notices.moves:
        service.tell(session=session, clock=clock, notices=notices, about=f"feed {feed.name} run {run.id}")
    _finish(session, clock, feed, run)
    return report


def _end_by_key(session: Session, clock: Clock, actor: Actor, feed: StaffingFeed, item: FeedItem) -> int:
    if not item.key:
        raise ItemRefused("id", "an end needs the assignment's id")
    now = clock.now()
    rows = session.execute(select(StaffAssignment).where(
        StaffAssignment.feed_id == feed.id, StaffAssignment.external_key == item.key, StaffAssignment.ends_at > now,
        StaffAssignment.ends_at > StaffAssignment.starts_at)).scalars().all()
    for row in rows:
        service.end_assignment(session=session, clock=clock, actor=actor, assignment_id=row.id,
                               at=max(now, row.starts_at), reason=f"ended by {feed.name} ({item.where})")
    return len(rows)


def _end_missing(session: Session, clock: Clock, actor: Actor, feed: StaffingFeed, run: StaffingFeedRun,
                 unit_codes: Sequence[str], seen: set[int], until: datetime | None) -> int:
    """This feed's live assignments in these units (starting before ``until``, the end of a poll's
    window) that the delivery did not list."""
    now = clock.now()
    ended = 0
    for code in unit_codes:
        unit = patients.find_unit(session=session, code=code)
        if unit is None:
            continue
        for row in session.execute(select(StaffAssignment).where(
                StaffAssignment.feed_id == feed.id, StaffAssignment.unit_id == unit.id,
                StaffAssignment.ends_at > now, StaffAssignment.ends_at > StaffAssignment.starts_at)).scalars().all():
            if row.id in seen or (until is not None and row.starts_at >= until):
                continue
            service.end_assignment(session=session, clock=clock, actor=actor, assignment_id=row.id,
                                   at=max(now, row.starts_at), reason=f"no longer in {feed.name} (run {run.id})")
            ended += 1
    return ended


def _finish(session: Session, clock: Clock, feed: StaffingFeed, run: StaffingFeedRun) -> None:
    session.flush()
    audit.record(session=session, clock=clock, actor=feed_actor(feed), action="staffing.feed_run",
                 object_type="staffing_feed", object_id=feed.id,
                 outcome="failure" if run.status in ("failed", "rejected") else "success",
                 detail={"run_id": run.id, "status": run.status, "file": run.file_name, "rows": run.rows,
                         "applied": run.applied, "unchanged": run.unchanged, "ended": run.ended,
                         "conflicts": run.conflicts, "errors": len(run.errors), "error": run.error})
    if run.status in ("failed", "rejected"):
        what = run.file_name or "poll"
        first = run.errors[0] if run.errors else None
        detail = run.error or (f"{len(run.errors)} refused item(s); first: {first['where']}, {first['field']}: "
                               f"{first['message']}" if first else "")
        ref = f"feed:{feed.id}:{run.file_sha256 or f'{run.started_at:%Y-%m-%d}:{run.error}'}"[:200]
        if alerts.find_by_source(session=session, source="staffing", source_ref=ref) is None:
            try:
                with session.begin_nested():
                    alerts.raise_alert(
                        session=session, clock=clock, actor=feed_actor(feed), kind="staffing_feed_failed",
                        priority="urgent", title=f"Staffing feed {feed.name}: {what} {run.status}"[:300],
                        body=f"{detail}\nNothing from it was applied. Run {run.id}: "
                             f"GET /api/staffing/feeds/{feed.id}/runs"[:5000],
                        address=INTEGRATION_ADMINS, source="staffing", source_ref=ref,
                        data={"feed_id": feed.id, "run_id": run.id})
            except Invalid as exc:  # no such group here: the run still records the failure
                log.error("staffing feed failure not alerted", extra={"feed": feed.name, "run_id": run.id,
                                                                      "reason": exc.message})


def feed_source(feed: StaffingFeed) -> str:
    return Source.FILE.value if feed.kind == FeedKind.SFTP_CSV else Source.SYNC.value
