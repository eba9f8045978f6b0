"""What a run left in the database, read back as plain facts for the report.

Read straight from the stored rows in one read-only snapshot, like the reports in alerts/reports.py,
rather than through the services the run drove: the check must not depend on the code paths it is
checking. Two checks resolve addresses as routing does, independently of the hand-over timers: every
15 minutes each on-call role the day uses must reach someone, and a minute after each shift change
every bed's nurse must be the nurse that shift's board named. And every address a paging rule can
send a unit's calls and alarms to (its target, each escalation step, the fallback, filled in for that
unit) must at least exist: one that cannot be resolved at all (a group nobody created) makes its step
go to the fallback, with a "no one to reach" page, however well staffed the unit is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carerelay.alerts.models import Alert, AlertEvent, AlertRecipient
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.escalation.engine import DEFAULT_STEPS
from carerelay.escalation.models import EscalationRun
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.rule_check import filled_by_page, for_bed, templates
from carerelay.jobs.models import Timer
from carerelay.messaging.models import Message, Receipt
from carerelay.patients.models import Unit
from carerelay.routing.resolver import resolve
from carerelay.simulation.hospital import shift_kind
from carerelay.simulation.runner import Run
from carerelay.simulation.workload import senders_of
from carerelay.staffing.models import StaffingHandover
from carerelay.staffing.shifts import Shift

ROLE_ADDRESSES = ("role:Hospitalist", "role:Cardiology On Call", "role:Cardiology On Call#2", "role:Neurology On Call")
COVERAGE_EVERY = timedelta(minutes=15)
AFTER_CHANGE = timedelta(minutes=1)


@dataclass(frozen=True)
class AlertFact:
    id: int
    kind: str
    priority: str
    created_at: datetime
    status: str
    acknowledged_at: datetime | None
    first_wait: timedelta
    escalated_at: datetime | None
    recipients: int
    devices: int
    run_state: str | None
    held_until: datetime | None = None


@dataclass(frozen=True)
class HandoverFact:
    unit: str
    change_at: datetime
    ended: int
    renewed: int
    continuing: int
    unassigned_beds: tuple[str, ...]


@dataclass
class Facts:
    alerts: list[AlertFact] = field(default_factory=list)
    messages: int = 0
    messages_needing_ack: int = 0
    receipts: int = 0
    receipts_read: int = 0
    lost_messages: list[int] = field(default_factory=list)
    timer_failures: list[str] = field(default_factory=list)
    no_one_steps: list[str] = field(default_factory=list)
    empty_fallbacks: list[int] = field(default_factory=list)
    handovers: list[HandoverFact] = field(default_factory=list)
    coverage_gaps: list[str] = field(default_factory=list)
    bed_mismatches: list[str] = field(default_factory=list)
    unresolvable: list[str] = field(default_factory=list)


def _first_wait(run: EscalationRun | None) -> timedelta:
    steps: list[dict[str, Any]] = (run.snapshot.get("steps") if run is not None else None) or DEFAULT_STEPS
    return timedelta(minutes=float(steps[0].get("wait_minutes", 5)))


def _alerts(session: Session, run: Run, facts: Facts) -> None:
    start = run.options.start
    rows = list(session.execute(select(Alert).where(Alert.created_at >= start).order_by(Alert.id)).scalars())
    ids = [a.id for a in rows]
    runs = {r.alert_id: r for r in session.execute(
        select(EscalationRun).where(EscalationRun.alert_id >= min(ids, default=0))).scalars()}
    recipients = dict(session.execute(select(AlertRecipient.alert_id, func.count()).where(
        AlertRecipient.alert_id >= min(ids, default=0)).group_by(AlertRecipient.alert_id)).all())
    later: dict[int, datetime] = {}
    held: dict[int, datetime] = {}
    created = {a.id: a.created_at for a in rows}
    for alert_id, kind, at, detail in session.execute(
            select(AlertEvent.alert_id, AlertEvent.kind, AlertEvent.at, AlertEvent.detail)
            .where(AlertEvent.alert_id >= min(ids, default=0),
                   AlertEvent.kind.in_(("notified", "fallback", "repeat", "no_one", "fallback_empty", "held")))
            .order_by(AlertEvent.id)):
        if alert_id not in created:
            continue
        onward = (kind == "notified" and int(detail.get("step") or 0) > 0) or kind in ("fallback", "repeat")
        if onward and at > created[alert_id] and alert_id not in later:
            later[alert_id] = at  # the next step, a repeat or the fallback: not a hold's release
        elif kind == "no_one":
            facts.no_one_steps.append(f"alert {alert_id} step {detail.get('step')}: {detail.get('address')} — "
                                      f"{detail.get('explanation')}")
        elif kind == "fallback_empty":
            facts.empty_fallbacks.append(alert_id)
        elif kind == "held":
            until = datetime.fromisoformat(str(detail["until"]))
            held[alert_id] = max(until, held.get(alert_id, until))
    for a in rows:
        escalation = runs.get(a.id)
        facts.alerts.append(AlertFact(
            id=a.id, kind=a.kind, priority=a.priority, created_at=a.created_at, status=a.status,
            acknowledged_at=a.acknowledged_at, first_wait=_first_wait(escalation), escalated_at=later.get(a.id),
            recipients=int(recipients.get(a.id, 0)), devices=len(run.devices.alerts.get(a.id, ())),
            run_state=escalation.state if escalation is not None else None, held_until=held.get(a.id)))


def _messages(session: Session, run: Run, facts: Facts) -> None:
    rows = session.execute(select(Message.id, Message.needs_ack).where(Message.created_at >= run.options.start)).all()
    facts.messages = len(rows)
    facts.messages_needing_ack = sum(1 for _, needs in rows if needs)
    first = min((m for m, _ in rows), default=0)
    wanted: dict[int, set[int]] = defaultdict(set)
    for message_id, person_id, read_at in session.execute(
            select(Receipt.message_id, Receipt.person_id, Receipt.read_at).where(Receipt.message_id >= first)):
        wanted[message_id].add(person_id)
        facts.receipts += 1
        facts.receipts_read += read_at is not None
    for message_id, _ in rows:
        if not wanted[message_id] or wanted[message_id] - run.devices.messages.get(message_id, set()):
            facts.lost_messages.append(message_id)


def _timers(session: Session, run: Run, facts: Facts) -> None:
    for timer_id, kind, attempts, error in session.execute(
            select(Timer.id, Timer.kind, Timer.attempts, Timer.last_error)
            .where(Timer.created_at >= run.options.start, Timer.last_error.is_not(None)).order_by(Timer.id)):
        facts.timer_failures.append(f"timer {timer_id} ({kind}, {attempts} attempts): {error}")


def _handovers(session: Session, run: Run, facts: Facts) -> None:
    end = run.finished_at or run.options.end
    codes = dict(session.execute(select(Unit.id, Unit.code)).all())
    for row in session.execute(select(StaffingHandover).where(
            StaffingHandover.change_at > run.options.start, StaffingHandover.change_at <= end)
            .order_by(StaffingHandover.change_at, StaffingHandover.unit_id)).scalars():
        facts.handovers.append(HandoverFact(codes[row.unit_id], row.change_at, row.ended, row.renewed, row.continuing,
                                            tuple(row.unassigned_beds)))


def _coverage(session: Session, run: Run, facts: Facts) -> None:
    at = run.options.start
    while at < run.options.end:
        for address in ROLE_ADDRESSES:
            if resolve(session, address, at).empty:
                facts.coverage_gaps.append(f"{address} reached no one at {at:%Y-%m-%d %H:%M} UTC")
        at += COVERAGE_EVERY


def _beds(session: Session, run: Run, facts: Facts) -> None:
    hospital = run.hospital
    changes = sorted(run.workload.shift_changes, key=lambda c: c[1])
    for unit, change in changes:
        ends = next((c for u, c in changes if u == unit and c > change), change + timedelta(hours=12))
        kind = shift_kind(Shift(change, ends, hospital.zones[unit]))
        team = hospital.team(unit, kind)
        at = change + AFTER_CHANGE
        for bed in (b for b in hospital.beds if b.unit == unit):
            reached = resolve(session, f"location:{bed.unit}/{bed.room}/{bed.bed}/nurse", at).person_ids
            if reached != [team.nurse_of(bed).person_id]:
                facts.bed_mismatches.append(f"{bed.code} at {at:%Y-%m-%d %H:%M} UTC reached {reached}, the board "
                                            f"named {team.nurse_of(bed).username}")


def _paging(session: Session, run: Run, facts: Facts) -> None:
    at = run.options.start + AFTER_CHANGE
    for rule in paging.list_rules(session=session):
        if not rule.active:
            continue
        for unit in run.hospital.units:
            if rule.sender_id is not None and rule.sender_id not in senders_of(unit):
                continue
            bed = next(b for b in run.hospital.beds if b.unit == unit)
            for template in templates(rule):
                if filled_by_page(template):
                    continue  # as the auditor's check does: a real page always has these
                address = for_bed(template, bed.unit, bed.room, bed.bed)
                try:
                    resolve(session, address, at)
                except Invalid as exc:
                    facts.unresolvable.append(f"paging rule {rule.name!r} for {unit}: {address}: {exc.message}")


def collect(*, db: Database, run: Run) -> Facts:
    facts = Facts()
    with db.read_only() as session:
        _alerts(session, run, facts)
        _messages(session, run, facts)
        _timers(session, run, facts)
        _handovers(session, run, facts)
        _coverage(session, run, facts)
        _beds(session, run, facts)
        _paging(session, run, facts)
    return facts
