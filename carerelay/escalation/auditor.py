"""The auditor: watch the machine that pages people (style habit 6).

A durable timer (kind ``auditor.run``) fires every ``auditor_interval_seconds`` on whichever node takes
it, runs the checks in one transaction and schedules its next run. Checks:

- ``stalled_alert``: every open alert has a future step or its escalation is finished. An open alert
  without a run, an active run without a pending step timer, or a run that ended while its alert is
  still open is a finding.
- ``contact_point``: everyone on a published slot now or starting within
  ``auditor_shift_horizon_hours`` can be reached outside the app: an active phone number, or an SMS,
  pager or e-mail contact point whose channel this node has configured. A deactivated person on the
  schedule, or a placeholder with no number, is a finding too. It goes to the department's
  schedulers *before* the shift starts, not after a missed page.
- ``timer_lag``: no pending timer is overdue, and none fired since the previous run, by more than
  ``auditor_max_timer_lag_seconds``; ``timer_failing``: a timer whose handler keeps failing.
- ``paging_rule``: every address an active paging rule can send a unit's calls to (target, steps,
  fallback, filled in for the beds it can be about) names something that exists — a rule sending to
  ``group:{unit}-NURSES`` for a unit without that group would otherwise be found only when a bed call
  falls back to the operators (``integrations/paging/rule_check.py``).

Each finding is an alert (kind ``auditor_finding``) to the integration admins, deduplicated by its
``source_ref``: one per stalled alert, slot, failing timer or rule address, ever; timer lag at most once an hour
and never while its last alert is still open. Counts per check are the gauge
``carerelay_auditor_findings{check}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert, AlertStatus
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.directory.models import ContactPoint, Person
from carerelay.escalation.engine import STEP_TIMER, timer_key
from carerelay.escalation.models import EscalationRun
from carerelay.integrations.paging.rule_check import unresolvable_addresses
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.ops.metrics import AUDITOR_FINDINGS, AUDITOR_LAST_RUN, AUDITOR_RUNS, TIMER_MAX_LAG, TIMERS_OVERDUE
from carerelay.routing.resolver import resolve
from carerelay.scheduling import lookup

log = logging.getLogger("carerelay.auditor")

AUDITOR_TIMER = "auditor.run"
AUDITOR_KEY = "auditor:run"
FINDING_KIND = "auditor_finding"
SOURCE = "auditor"
INTEGRATION_ADMINS = "group:INTEGRATION-ADMINS"
CHECKS = ("stalled_alert", "contact_point", "timer_lag", "timer_failing", "paging_rule")
REALERT_LAG = timedelta(hours=1)
ALWAYS_WORKING = frozenset({"phone"})
ACTOR = Actor(person_id=None, username="auditor", roles=frozenset({"system"}))
CHUNK = 500


@dataclass(frozen=True)
class AuditorConfig:
    interval_seconds: float = 60.0
    max_lag_seconds: float = 30.0
    shift_horizon_hours: float = 12.0
    channels: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        return {"interval_seconds": self.interval_seconds, "max_lag_seconds": self.max_lag_seconds,
                "shift_horizon_hours": self.shift_horizon_hours, "channels": list(self.channels)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AuditorConfig:
        return cls(float(params.get("interval_seconds", 60)), float(params.get("max_lag_seconds", 30)),
                   float(params.get("shift_horizon_hours", 12)), tuple(params.get("channels", ())))


@dataclass(frozen=True)
class Finding:
    check: str
    ref: str
    title: str
    body: str
    address: str = INTEGRATION_ADMINS
    department_id: int | None = None
    realert_after: timedelta | None = None


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    raised: list[int] = field(default_factory=list)

    def count(self, check: str) -> int:
        return sum(1 for f in self.findings if f.check == check)


def ensure_scheduled(*, db: Database, clock: Clock, config: AuditorConfig) -> None:
    """At worker start: one pending auditor run, carrying this node's settings and channels."""
    with db.unit_of_work() as session:
        pending = jobs.pending(session=session, key=AUDITOR_KEY)
        if pending:
            pending[0].params = {**pending[0].params, **config.params()}
            return
        jobs.schedule(session=session, clock=clock, kind=AUDITOR_TIMER,
                      due_at=clock.now() + timedelta(seconds=config.interval_seconds),
                      params={**config.params(), "since": clock.now().isoformat()}, key=AUDITOR_KEY)


@jobs.HANDLERS.register(AUDITOR_TIMER)
def on_auditor_due(session: Session, clock: Clock, timer: Timer) -> None:
    config = AuditorConfig.from_params(timer.params)
    since = datetime.fromisoformat(timer.params["since"]) if timer.params.get("since") else None
    run_checks(session=session, clock=clock, config=config, since=since)
    others = [t for t in jobs.pending(session=session, key=AUDITOR_KEY) if t.id != timer.id]
    if not others:  # two nodes starting together may both schedule one; the pair collapses here
        jobs.schedule(session=session, clock=clock, kind=AUDITOR_TIMER,
                      due_at=clock.now() + timedelta(seconds=config.interval_seconds),
                      params={**config.params(), "since": clock.now().isoformat()}, key=AUDITOR_KEY)


def run_checks(*, session: Session, clock: Clock, config: AuditorConfig, since: datetime | None = None) -> AuditResult:
    """Every check, then one alert per new finding; the gauges show this run's counts."""
    now = clock.now()
    result = AuditResult()
    result.findings.extend(_stalled_alerts(session))
    result.findings.extend(_contact_points(session, now, config))
    result.findings.extend(_timer_lag(session, now, config, since or now - timedelta(seconds=config.interval_seconds)))
    result.findings.extend(_paging_rules(session, now))
    for finding in result.findings:
        alert_id = _raise_once(session, clock, finding)
        if alert_id is not None:
            result.raised.append(alert_id)
    for check in CHECKS:
        AUDITOR_FINDINGS.labels(check).set(result.count(check))
    AUDITOR_RUNS.inc()
    AUDITOR_LAST_RUN.set(now.timestamp())
    if result.findings:
        log.warning("auditor findings", extra={"findings": len(result.findings), "raised": len(result.raised)})
    return result


def _raise_once(session: Session, clock: Clock, finding: Finding) -> int | None:
    """The finding's department is kept in its data, not on the alert: a schedule gap in cardiology
    must follow the findings' chain (the addressee, then the operators), not page cardiology."""
    ref = f"{finding.check}:{finding.ref}"
    earlier = alerts.find_by_source(session=session, source=SOURCE, source_ref=ref)
    if earlier is not None:
        if finding.realert_after is None or earlier.status == AlertStatus.OPEN:
            return None
        if clock.now() - earlier.created_at < finding.realert_after:
            return None
    address = finding.address
    if address != INTEGRATION_ADMINS and resolve(session, address, clock.now()).empty:
        address = INTEGRATION_ADMINS
    alert = alerts.raise_alert(session=session, clock=clock, actor=ACTOR, kind=FINDING_KIND, priority="urgent",
                               title=finding.title[:300], body=finding.body, address=address, source=SOURCE,
                               source_ref=ref,
                               data={"check": finding.check, "ref": finding.ref,
                                     "department_id": finding.department_id})
    return alert.id


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


def _stalled_alerts(session: Session) -> list[Finding]:
    rows = session.execute(
        select(Alert.id, Alert.title, EscalationRun.state)
        .outerjoin(EscalationRun, EscalationRun.alert_id == Alert.id)
        .where(Alert.status == AlertStatus.OPEN).order_by(Alert.id)
    ).all()
    active = [alert_id for alert_id, _, state in rows if state == "active"]
    waiting: set[str] = set()
    for chunk in _chunks(active):
        waiting.update(key for key in session.execute(
            select(Timer.key).where(Timer.key.in_([timer_key(a) + "step" for a in chunk]), Timer.kind == STEP_TIMER,
                                    Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))).scalars() if key)
    found = []
    for alert_id, title, state in rows:
        if state == "active" and timer_key(alert_id) + "step" in waiting:
            continue
        if state == "exhausted":
            continue
        problem = ("has no escalation" if state is None else
                   "has an active escalation with no next step scheduled" if state == "active" else
                   f"is open but its escalation ended ({state})")
        found.append(Finding("stalled_alert", f"alert:{alert_id}", f"Alert {alert_id} {problem}",
                             f"Open alert {alert_id} ({title}) {problem}: nobody will be reached again unless it "
                             f"is escalated by hand. Check it in the trail (GET /api/alerts/{alert_id})."))
    return found


def _working_contacts(session: Session, person_ids: list[int], channels: tuple[str, ...]) -> dict[int, list[str]]:
    usable = ALWAYS_WORKING | set(channels)
    found: dict[int, list[str]] = {pid: [] for pid in person_ids}
    for chunk in _chunks(person_ids):
        for pid, kind in session.execute(select(ContactPoint.person_id, ContactPoint.kind)
                                         .where(ContactPoint.person_id.in_(chunk), ContactPoint.active.is_(True))):
            if kind in usable:
                found[pid].append(kind)
    return found


def _contact_points(session: Session, now: datetime, config: AuditorConfig) -> list[Finding]:
    slots = lookup.working_between(session=session, since=now, until=now + timedelta(hours=config.shift_horizon_hours))
    person_ids = sorted({s.person_id for s in slots if s.person_id is not None})
    active: dict[int, bool] = {}
    for chunk in _chunks(person_ids):
        active.update({pid: on for pid, on in session.execute(select(Person.id, Person.active)
                                                              .where(Person.id.in_(chunk)))})
    working = _working_contacts(session, person_ids, config.channels)
    configured = ", ".join(sorted(ALWAYS_WORKING | set(config.channels)))
    found = []
    for slot in slots:
        when = "now" if slot.starts_at <= now else f"from {slot.starts_at:%Y-%m-%d %H:%M} UTC"
        if slot.person_id is None:
            if slot.contact:
                continue
            problem = f"placeholder {slot.name} has no number to call"
        elif not active.get(slot.person_id, False):
            problem = f"{slot.name} is deactivated"
        elif working[slot.person_id]:
            continue
        else:
            problem = f"{slot.name} has no working contact point (usable kinds here: {configured})"
        found.append(Finding(
            "contact_point", f"slot:{slot.slot_id}", f"{slot.assignment_name} {when}: {problem}",
            f"{slot.reason}. {problem[0].upper()}{problem[1:]}: a page for {slot.assignment_name} may reach no one. "
            f"Add a phone, pager or SMS number in the directory, or change the schedule, before the shift.",
            address=f"scheduler:{slot.department_code}", department_id=slot.department_id))
    return found


def _max_lag_seconds(session: Session) -> ColumnElement[Any]:
    """Largest fired-minus-due in SQL: a busy minute can fire many thousands of timers."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", func.max(Timer.fired_at - Timer.due_at))
    return func.max((func.julianday(Timer.fired_at) - func.julianday(Timer.due_at)) * 86400.0)


def _timer_lag(session: Session, now: datetime, config: AuditorConfig, since: datetime) -> list[Finding]:
    bound = timedelta(seconds=config.max_lag_seconds)
    overdue = session.execute(
        select(Timer.id, Timer.kind, Timer.due_at).where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None),
                                                         Timer.due_at < now - bound).order_by(Timer.due_at)
    ).all()
    worst = float(session.execute(select(_max_lag_seconds(session)).where(Timer.fired_at >= since,
                                                                          Timer.fired_at <= now)).scalar() or 0.0)
    TIMERS_OVERDUE.set(len(overdue))
    TIMER_MAX_LAG.set(max(worst, 0.0))
    found = []
    if overdue or worst > config.max_lag_seconds:
        oldest = f"the oldest ({overdue[0][1]}, timer {overdue[0][0]}) was due at {overdue[0][2]:%H:%M:%S} UTC" \
            if overdue else "none is overdue now"
        found.append(Finding(
            "timer_lag", "timers", f"Escalation timers late: {len(overdue)} overdue, worst lag {worst:.0f} s",
            f"{len(overdue)} timers are more than {config.max_lag_seconds:g} s past due ({oldest}); the worst "
            f"fire-minus-due since {since:%H:%M:%S} UTC was {worst:.1f} s. Escalations wait on these timers: "
            f"check that some node runs them (CARERELAY_RUN_TIMERS) and that the database keeps up.",
            realert_after=REALERT_LAG))
    failing = session.execute(
        select(Timer.id, Timer.kind, Timer.attempts, Timer.last_error)
        .where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.attempts > 0)
    ).all()
    for timer_id, kind, attempts, error in failing:
        found.append(Finding("timer_failing", f"timer:{timer_id}", f"Timer {timer_id} ({kind}) keeps failing",
                             f"Timer {timer_id} of kind {kind} failed {attempts} times and is being retried; "
                             f"last error: {error or '(none)'}"))
    return found


def _paging_rules(session: Session, now: datetime) -> list[Finding]:
    findings = []
    for problem in unresolvable_addresses(session=session, at=now):
        where = f" (for unit {problem.unit})" if problem.unit else ""
        findings.append(Finding(
            "paging_rule", f"{problem.rule_id}:{problem.address}",
            f"Paging rule {problem.rule!r} can send calls to {problem.address}, which does not exist",
            f"Paging rule {problem.rule!r} sends calls{where} to {problem.address}: {problem.error}. "
            "Such a call would fall back to the operators. Create what it names, or change the rule."))
    return findings
