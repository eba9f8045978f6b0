"""The escalation engine: run a snapshot of a policy, one locked step at a time (style habit 4).

Starting copies the policy into the run. Each step resolves its address again *at that moment*, so a
shift change between steps reaches the new person. Each step schedules a durable timer carrying the
run's token; a timer whose token no longer matches (the alert was acknowledged, or rejected and
escalated early) does nothing. Acknowledging cancels every pending timer of the alert, personal
follow-ups included (the key prefix ``alert:<id>:``) — Grafana OnCall's #4654 is what this avoids.

Never nobody: a step that resolves to no one (or to an address that no longer resolves at all: a
deleted group, a renamed role) goes to the fallback address at once and raises a "no one to reach"
alert for the operators; the chain then goes on to its next step.

Every step is audited: the trail event and an ``alert.<kind>`` audit entry are written together
(``step``), so the tamper-evident log tells the same story as the trail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts import trail
from carerelay.alerts.models import Alert, AlertRecipient
from carerelay.audit import service as audit
from carerelay.core.actor import SYSTEM, Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.core.prepared import PreparedInsert
from carerelay.escalation.models import EscalationPolicy, EscalationRun
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.notifications import service as notifications
from carerelay.ops.metrics import NOBODY_TO_REACH
from carerelay.realtime import service as realtime
from carerelay.routing import rules
from carerelay.routing.resolver import Resolution, resolve

log = logging.getLogger("carerelay.escalation")

STEP_TIMER = "escalation.step"
RELEASE_TIMER = "routing.release"
FOLLOWUP_TIMER = "routing.followup"
TARGET = "target:"
DEFAULT_FALLBACK = "group:OPERATORS"
DEFAULT_STEPS = [{"address": TARGET, "wait_minutes": 5}]
NO_ONE_KIND = "no_one_to_reach"


def timer_key(alert_id: int) -> str:
    return f"alert:{alert_id}:"


SPECIFICITY = (("alert_kind", "kind", 4), ("department_id", "department_id", 2), ("priority", "priority", 1))
"""What happened weighs most (a critical result has its own chain), then where, then how urgent."""


_ACTIVE_POLICIES = select(EscalationPolicy).where(EscalationPolicy.active.is_(True)).order_by(EscalationPolicy.id)


def find_policy(session: Session, alert: Alert) -> EscalationPolicy | None:
    """The most specific active policy matching the alert's kind, department and priority."""
    best: tuple[int, EscalationPolicy] | None = None
    for policy in session.execute(_ACTIVE_POLICIES).scalars():
        fields = [(getattr(policy, mine), getattr(alert, theirs), weight) for mine, theirs, weight in SPECIFICITY]
        if any(want is not None and want != have for want, have, _ in fields):
            continue
        score = sum(weight for want, _, weight in fields if want is not None)
        if best is None or score > best[0]:
            best = (score, policy)
    return best[1] if best else None


def snapshot(policy: EscalationPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {"policy": "default", "steps": DEFAULT_STEPS, "repeat": 0, "fallback": DEFAULT_FALLBACK}
    return {"policy": policy.name, "steps": list(policy.steps), "repeat": policy.repeat,
            "fallback": policy.fallback_address or DEFAULT_FALLBACK}


def event(session: Session, clock: Clock, alert: Alert, kind: str, person_id: int | None = None,
          **detail: Any) -> None:
    trail.record_event(session, clock, alert.id, kind, person_id, detail)


def step(session: Session, clock: Clock, alert: Alert, kind: str, person_id: int | None = None,
         **detail: Any) -> None:
    """A trail event that is also an audit entry (``alert.<kind>``): hold, forward, fallback, stop…"""
    event(session, clock, alert, kind, person_id, **detail)
    _audit_step(session, clock, alert, kind, person_id, detail)


def _audit_step(session: Session, clock: Clock, alert: Alert, kind: str, person_id: int | None,
                detail: dict[str, Any]) -> None:
    audit.record(session=session, clock=clock, actor=SYSTEM, action=f"alert.{kind}", object_type="alert",
                 object_id=alert.id, detail={"person_id": person_id, "patient_id": alert.patient_id, **detail})


def resolve_safely(session: Session, address: str, clock: Clock) -> Resolution:
    """An address that no longer resolves (a deleted group, a renamed role) reaches no one, loudly:
    the step goes to the fallback instead of failing its timer over and over."""
    try:
        return resolve(session, address, clock.now())
    except Invalid as exc:
        return Resolution(address, clock.now(), notes=[f"{address} cannot be resolved: {exc.message}"])


def alert_json(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "kind": alert.kind, "priority": alert.priority, "title": alert.title, "body": alert.body,
            "patient_id": alert.patient_id, "location": alert.location, "choices": alert.choices,
            "status": alert.status, "created_at": alert.created_at.isoformat(), "data": alert.data}


def plan_snapshot(plan: dict[str, Any]) -> dict[str, Any]:
    """An escalation given with the alert (an integration rule's own steps), in a run's snapshot form."""
    given: list[dict[str, Any]] = plan.get("steps") or DEFAULT_STEPS
    steps = [{"address": str(s["address"]), "wait_minutes": float(s.get("wait_minutes", 5))} for s in given]
    return {"policy": str(plan.get("name") or "given with the alert"), "steps": steps,
            "repeat": int(plan.get("repeat", 1)), "fallback": str(plan.get("fallback") or DEFAULT_FALLBACK)}


def start(*, session: Session, clock: Clock, alert: Alert, plan: dict[str, Any] | None = None,
          raised: tuple[str, int | None, dict[str, Any]] | None = None) -> EscalationRun:
    """``plan`` given: it is the snapshot (no policy lookup); otherwise the most specific policy's.
    ``raised``: the alert's own first trail entry, written in the same statement as the run's.

    The run is written once its first step has set its token and due time (``_stored``): one INSERT,
    not an INSERT and an UPDATE."""
    policy = None if plan is not None else find_policy(session, alert)
    chosen = plan_snapshot(plan) if plan is not None else snapshot(policy)
    run = EscalationRun(alert_id=alert.id, policy_id=policy.id if policy else None, snapshot=chosen,
                        step_index=0, round=0, state="active", token=0, started_at=clock.now())
    started = {"policy": chosen["policy"], "steps": len(chosen["steps"]), "repeat": chosen["repeat"],
               "fallback": chosen["fallback"]}
    trail.record_events(session, clock, alert.id,
                        [*([raised] if raised else []), ("escalation_started", None, started)])
    _audit_step(session, clock, alert, "escalation_started", None, started)
    _execute_step(session, clock, run, alert, why="alert raised", first=True)
    return _stored(session, run)


_INSERT_RUN = PreparedInsert(EscalationRun)


def _stored(session: Session, run: EscalationRun) -> EscalationRun:
    """A run its first step is still shaping has no row yet; anything that needs its id writes it."""
    return run if run.id is not None else _INSERT_RUN.add(session, run)


NotifyHook = Callable[[Session, Clock, Alert, list[int]], None]
NOTIFY_HOOKS: dict[str, NotifyHook] = {}
"""Per alert kind: what else reaching people means (an escalated message adds them to its conversation)."""


def on_notify(kind: str) -> Callable[[NotifyHook], NotifyHook]:
    def register(fn: NotifyHook) -> NotifyHook:
        NOTIFY_HOOKS[kind] = fn
        return fn

    return register


def _notify(session: Session, clock: Clock, alert: Alert, resolution: Resolution, step_no: int,
            why: str, *, first: bool = False) -> datetime | None:
    """Reach each recipient as their routing rules say: now, later (hold), someone else, or also by SMS…

    Returns when the first hold ends if every recipient holds it (the step's wait starts then: a
    routine page held until morning does not escalate to the operators overnight).
    """
    now = clock.now()
    sender_type = str(alert.data.get("sender_type", "system"))
    reached: list[tuple[int, str]] = []
    holds: list[datetime] = []
    decisions = rules.decide_all(session, person_ids=[r.person_id for r in resolution.recipients],
                                 priority=alert.priority, sender_type=sender_type, at=now)
    for recipient in resolution.recipients:
        decision = decisions[recipient.person_id]
        if decision.note:
            step(session, clock, alert, "floor", recipient.person_id, note=decision.note, rule_id=decision.rule_id)
        if decision.action == "hold" and decision.hold_until is not None:
            step(session, clock, alert, "held", recipient.person_id, until=decision.hold_until.isoformat(),
                 rule_id=decision.rule_id)
            jobs.schedule(session=session, clock=clock, kind=RELEASE_TIMER, due_at=decision.hold_until,
                          params={"alert_id": alert.id, "person_id": recipient.person_id, "step": step_no,
                                  "reason": f"held by their rule until {decision.local}"},
                          key=f"{timer_key(alert.id)}hold:{recipient.person_id}")
            holds.append(decision.hold_until)
            continue
        if decision.action == "forward" and decision.forward_to:
            covering = resolve_safely(session, decision.forward_to, clock)
            step(session, clock, alert, "forwarded", recipient.person_id, to=decision.forward_to,
                 rule_id=decision.rule_id, explanation=covering.explain())
            if covering.empty:
                reached.append((recipient.person_id, f"{why}: {recipient.reason} (their forward reached no one)"))
            reached.extend((r.person_id, f"{why}: covering for {recipient.name} by their rule: {r.reason}")
                           for r in covering.recipients)
            continue
        reached.append((recipient.person_id, f"{why}: {recipient.reason}"))
        if decision.action == "add_contact" and decision.contact_kind and decision.after is not None:
            jobs.schedule(session=session, clock=clock, kind=FOLLOWUP_TIMER, due_at=now + decision.after,
                          params={"alert_id": alert.id, "person_id": recipient.person_id,
                                  "kind": decision.contact_kind, "rule_id": decision.rule_id},
                          key=f"{timer_key(alert.id)}followup:{recipient.person_id}")
    _reach(session, clock, alert, reached, step_no, resolution.address, first=first)
    _audit_notify(session, clock, alert, step_no, why, resolution.as_json(), reached)
    return min(holds) if holds and not reached else None


def _audit_notify(session: Session, clock: Clock, alert: Alert, step_no: int, why: str,
                  resolution: dict[str, Any] | None, reached: list[tuple[int, str]]) -> None:
    audit.record(session=session, clock=clock, actor=SYSTEM, action="alert.notify", object_type="alert",
                 object_id=alert.id, detail={"step": step_no, "why": why, "resolution": resolution,
                                             "reached": reached, "patient_id": alert.patient_id})


_INSERT_RECIPIENT = PreparedInsert(AlertRecipient)
_REACHED = select(AlertRecipient).where(AlertRecipient.alert_id == bindparam("alert_id"),
                                         AlertRecipient.person_id.in_(bindparam("ids", expanding=True)))


def _reach(session: Session, clock: Clock, alert: Alert, reached: list[tuple[int, str]], step_no: int,
           address: str, *, first: bool = False) -> None:
    """Who is reached, why, and the live push; the kind's hook runs last so it can read the reasons."""
    if not reached:
        return
    now = clock.now()
    person_ids = list(dict.fromkeys(pid for pid, _ in reached))
    earlier: dict[int, AlertRecipient] = {} if first else {
        row.person_id: row for row in session.execute(_REACHED, {"alert_id": alert.id, "ids": person_ids}).scalars()}
    new: dict[int, AlertRecipient] = {}
    for person_id, reason in reached:
        row = earlier.get(person_id) or new.get(person_id)
        if row is None:
            new[person_id] = AlertRecipient(alert_id=alert.id, person_id=person_id, step=step_no, reason=reason[:500],
                                            notified_at=now)
        else:
            row.step, row.reason, row.notified_at = step_no, reason[:500], now
    _INSERT_RECIPIENT.add_all(session, list(new.values()))
    trail.record_events(session, clock, alert.id, [
        ("notified", person_id, {"step": step_no, "reason": reason[:500], "address": address})
        for person_id, reason in reached])
    hook = NOTIFY_HOOKS.get(alert.kind)
    if hook is not None:
        hook(session, clock, alert, person_ids)
    reasons = dict(reached)
    partial = len(reasons) > realtime.PEOPLE_LISTED_MAX  # the reasons are in the alert's trail
    realtime.emit(session=session, clock=clock, person_ids=person_ids, kind="alert.new",
                  payload={**alert_json(alert), "reasons": None if partial else reasons, "partial": partial})


@jobs.HANDLERS.register(RELEASE_TIMER)
def on_hold_released(session: Session, clock: Clock, timer: Timer) -> None:
    alert = session.get_one(Alert, timer.params["alert_id"])
    if alert.status == "open":
        reached = [(timer.params["person_id"], timer.params["reason"])]
        _reach(session, clock, alert, reached, timer.params["step"], alert.address)
        _audit_notify(session, clock, alert, timer.params["step"], "hold released", None, reached)


@jobs.HANDLERS.register(FOLLOWUP_TIMER)
def on_followup_due(session: Session, clock: Clock, timer: Timer) -> None:
    """Still unanswered after N minutes: also try the contact point the person's rule names."""
    alert = session.get_one(Alert, timer.params["alert_id"])
    person_id, kind = timer.params["person_id"], timer.params["kind"]
    row = session.get(AlertRecipient, (alert.id, person_id))
    if alert.status != "open" or (row is not None and row.response is not None):
        return
    address = notifications.contact_for(session, person_id, kind)
    if address is None:
        step(session, clock, alert, "followup_impossible", person_id, channel=kind,
             note=f"no active {kind} contact point")
        return
    delivery = notifications.enqueue(session=session, clock=clock, person_id=person_id, channel=kind,
                                     address=address, subject=f"[{alert.priority.upper()}] {alert.title}",
                                     body=alert.body or alert.title, alert_id=alert.id)
    step(session, clock, alert, "followup", person_id, channel=kind, delivery_id=delivery.id,
         rule_id=timer.params.get("rule_id"))


def _fallback(session: Session, clock: Clock, run: EscalationRun, alert: Alert, why: str, *,
              first: bool = False) -> Resolution:
    resolution = resolve_safely(session, run.snapshot["fallback"], clock)
    step(session, clock, alert, "fallback", address=run.snapshot["fallback"], why=why,
         reaches=resolution.person_ids)
    if resolution.empty:
        NOBODY_TO_REACH.inc()
        step(session, clock, alert, "fallback_empty", address=run.snapshot["fallback"],
             explanation=resolution.explain())
        log.critical("fallback reaches no one", extra={"alert_id": alert.id, "fallback": run.snapshot["fallback"]})
    else:
        _notify(session, clock, alert, resolution, run.step_index, f"fallback ({why})", first=first)
    return resolution


def _no_one_to_reach(session: Session, clock: Clock, alert: Alert, address: str, explanation: str) -> None:
    """Tell the operators; this alert escalates like any other, but never raises another of its kind."""
    if alert.kind == NO_ONE_KIND:
        return
    alerts.raise_alert(session=session, clock=clock, actor=SYSTEM, kind=NO_ONE_KIND, priority="stat",
                       title=f"No one to reach for alert {alert.id}: {alert.title}"[:300],
                       body=f"{address} resolved to no one ({explanation}). The alert went to the fallback.",
                       address=DEFAULT_FALLBACK, source="carerelay", source_ref=f"alert:{alert.id}",
                       data={"alert_id": alert.id, "address": address})


def _execute_step(session: Session, clock: Clock, run: EscalationRun, alert: Alert, why: str, *,
                  first: bool = False) -> None:
    """``first``: the alert was just raised, so no one has been reached yet (one query fewer)."""
    steps = run.snapshot["steps"]
    if run.step_index >= len(steps):
        if run.round < run.snapshot["repeat"]:
            run.round += 1
            run.step_index = 0
            step(session, clock, alert, "repeat", round=run.round, of=run.snapshot["repeat"])
        else:
            _fallback(session, clock, run, alert, "every step tried without acknowledgement", first=first)
            run.state = "exhausted"
            run.finished_at = clock.now()
            run.next_due_at = None
            step(session, clock, alert, "exhausted", rounds=run.round + 1, steps=len(steps))
            return
    current = steps[run.step_index]
    address = alert.address if current["address"] == TARGET else current["address"]
    resolution = resolve_safely(session, address, clock)
    raiser = alert.data.get("raised_by")
    if raiser is not None:
        resolution.recipients = [r for r in resolution.recipients if r.person_id != raiser]
    if resolution.empty:
        NOBODY_TO_REACH.inc()
        step(session, clock, alert, "no_one", step=run.step_index, address=address,
             explanation=resolution.explain())
        _fallback(session, clock, run, alert, f"{address} reached no one", first=first)
        _no_one_to_reach(session, clock, alert, address, resolution.explain())
        held_until = None
    else:
        held_until = _notify(session, clock, alert, resolution, run.step_index, why, first=first)
    wait = timedelta(minutes=float(current.get("wait_minutes", 5)))
    run.token += 1
    run.next_due_at = max(clock.now(), held_until or clock.now()) + wait
    jobs.schedule(session=session, clock=clock, kind=STEP_TIMER, due_at=run.next_due_at,
                  params={"run_id": _stored(session, run).id, "token": run.token}, key=timer_key(alert.id) + "step")


def _locked_run(session: Session, alert_id: int) -> EscalationRun | None:
    return session.execute(select(EscalationRun).where(EscalationRun.alert_id == alert_id)
                           .with_for_update()).scalar_one_or_none()


@jobs.HANDLERS.register(STEP_TIMER)
def on_step_due(session: Session, clock: Clock, timer: Timer) -> None:
    run = session.execute(select(EscalationRun).where(EscalationRun.id == timer.params["run_id"])
                          .with_for_update()).scalar_one_or_none()
    if run is None or run.state != "active" or run.token != timer.params["token"]:
        return
    alert = session.get_one(Alert, run.alert_id)
    wait = float(run.snapshot["steps"][run.step_index].get("wait_minutes", 5))
    run.step_index += 1
    _execute_step(session, clock, run, alert, why=f"not acknowledged within {wait:g} minutes")


def stop(*, session: Session, clock: Clock, alert: Alert, state: str) -> None:
    """Acknowledged (or closed): end the run and cancel everything pending for this alert."""
    run = _locked_run(session, alert.id)
    if run is not None and run.state == "active":
        run.state = state
        run.token += 1
        run.finished_at = clock.now()
        run.next_due_at = None
    cancelled = jobs.cancel_prefix(session=session, clock=clock, prefix=timer_key(alert.id))
    unsent = notifications.cancel_for_alert(session=session, alert_id=alert.id)
    step(session, clock, alert, "escalation_stopped", state=state, timers_cancelled=cancelled,
         deliveries_cancelled=unsent)


def escalate_now(*, session: Session, clock: Clock, alert: Alert, why: str, actor: Actor) -> None:
    """A reject does not wait out the step: the next step runs at once."""
    run = _locked_run(session, alert.id)
    if run is None or run.state != "active":
        return
    jobs.cancel(session=session, clock=clock, key=timer_key(alert.id) + "step")
    run.step_index += 1
    _execute_step(session, clock, run, alert, why=why)
