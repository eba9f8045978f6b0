"""Raising alerts and closing the loop: acknowledge, accept / reject / call back, read-back.

Privacy rule (1): an alert's details and trail are visible to the people it reached and to the
roles that run the system (operators, integration admins, compliance officers); others get
"not found".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts.models import Alert, AlertEvent, AlertRecipient, AlertStatus
from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Forbidden, Invalid, NotFound
from carerelay.escalation import engine
from carerelay.realtime import service as realtime
from carerelay.routing.resolver import check_address, department_of
from carerelay.routing.rules import sender_type_of

OVERSEERS = frozenset({"operator", "integration_admin", "compliance_officer", "system_admin"})
ACCEPT, REJECT, CALL_BACK = "accept", "reject", "call back"

AckHook = Callable[[Session, Clock, Alert, int], None]
ACK_HOOKS: dict[str, AckHook] = {}
"""Per alert kind: what else an acknowledgement means (a message's receipt, a WCTP reply…)."""


def on_acknowledge(kind: str) -> Callable[[AckHook], AckHook]:
    def register(fn: AckHook) -> AckHook:
        ACK_HOOKS[kind] = fn
        return fn

    return register


def raise_alert(
    *, session: Session, clock: Clock, actor: Actor, kind: str, priority: str, title: str, body: str, address: str,
    source: str, source_ref: str | None = None, patient_id: int | None = None, department_id: int | None = None,
    location: str | None = None, choices: Sequence[str] = (), data: dict[str, Any] | None = None,
) -> Alert:
    """Store the alert and start its escalation in the same transaction: an alert never sits unrouted.

    Without a department, the address's own (a role's, a group's) picks the policy: a page to
    "Cardiology On Call" follows cardiology's chain. The sender type personal rules match on is the
    raiser's profession (an operator is an operator), or "system" for feeds and timers.
    """
    check_address(address)
    if department_id is None:
        department_id = department_of(session, address)
    data = dict(data or {})
    data.setdefault("sender_type", sender_type_of(session, actor.person_id))
    alert = Alert(kind=kind, priority=priority, title=title, body=body, address=address, patient_id=patient_id,
                  department_id=department_id, location=location, source=source, source_ref=source_ref,
                  choices=list(choices), data=data, status=AlertStatus.OPEN, created_at=clock.now())
    session.add(alert)
    session.flush()
    engine.event(session, clock, alert, "raised", actor.person_id, source=source, address=address)
    audit.record(session=session, clock=clock, actor=actor, action="alert.raise", object_type="alert",
                 object_id=alert.id, detail={"kind": kind, "priority": priority, "address": address,
                                             "patient_id": patient_id})
    engine.start(session=session, clock=clock, alert=alert)
    return alert


def access_alert(*, session: Session, actor: Actor, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if actor.roles & OVERSEERS:
        return alert
    if actor.person_id is None or session.get(AlertRecipient, (alert_id, actor.person_id)) is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def _changed(session: Session, clock: Clock, alert: Alert) -> None:
    recipients = list(session.execute(select(AlertRecipient.person_id)
                                      .where(AlertRecipient.alert_id == alert.id)).scalars())
    realtime.emit(session=session, clock=clock, person_ids=recipients, kind="alert.changed",
                  payload=engine.alert_json(alert) | {"acknowledged_by": alert.acknowledged_by})


def acknowledge(*, session: Session, clock: Clock, actor: Actor, alert_id: int, response: str = ACCEPT) -> Alert:
    alert = access_alert(session=session, actor=actor, alert_id=alert_id)
    return acknowledge_alert(session=session, clock=clock, actor=actor, alert=alert, response=response)


def acknowledge_alert(*, session: Session, clock: Clock, actor: Actor, alert: Alert, response: str = ACCEPT) -> Alert:
    """For callers that already checked the right to (a message's recipient acknowledging it)."""
    if actor.person_id is None:
        raise Forbidden("only a person can acknowledge")
    if alert.status != AlertStatus.OPEN:
        return alert
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_by = actor.person_id
    alert.acknowledged_at = clock.now()
    _record_response(session, clock, alert, actor.person_id, response)
    engine.stop(session=session, clock=clock, alert=alert, state="acknowledged")
    engine.event(session, clock, alert, "acknowledged", actor.person_id, response=response)
    audit.record(session=session, clock=clock, actor=actor, action="alert.acknowledge", object_type="alert",
                 object_id=alert.id, detail={"response": response,
                                             "seconds_to_ack": (clock.now() - alert.created_at).total_seconds()})
    hook = ACK_HOOKS.get(alert.kind)
    if hook is not None:
        hook(session, clock, alert, actor.person_id)
    _changed(session, clock, alert)
    return alert


def find_by_source(*, session: Session, source: str, source_ref: str) -> Alert | None:
    return session.execute(select(Alert).where(Alert.source == source, Alert.source_ref == source_ref)
                           .order_by(Alert.id.desc()).limit(1)).scalar_one_or_none()


def _record_response(session: Session, clock: Clock, alert: Alert, person_id: int, response: str) -> None:
    row = session.get(AlertRecipient, (alert.id, person_id))
    if row is not None:
        now = clock.now()
        row.response = response
        row.responded_at = now
        row.delivered_at = row.delivered_at or now
        row.read_at = row.read_at or now


RECEIPT_STATES = ("delivered", "read")


def note_receipt(*, session: Session, clock: Clock, alert: Alert, person_id: int, state: str) -> None:
    """A receipt the caller already checked and audited (a needs-ack message delivered or read)."""
    row = session.get(AlertRecipient, (alert.id, person_id))
    if row is None:
        return
    row.delivered_at = row.delivered_at or clock.now()
    if state in ("read", "acknowledged"):
        row.read_at = row.read_at or clock.now()


def mark_alerts(*, session: Session, clock: Clock, actor: Actor, alert_ids: Sequence[int], state: str) -> int:
    """The device got the alert (delivered) or the person opened it (read; implies delivered).

    What time-to-deliver and time-to-read reports measure; only the first time counts. Alerts that
    never reached the caller are "not found", like everywhere else.
    """
    if state not in RECEIPT_STATES:
        raise Invalid(f"state must be one of {', '.join(RECEIPT_STATES)}", field="state")
    if actor.person_id is None:
        raise Forbidden("only a person has alert receipts")
    wanted = set(alert_ids)
    rows = list(session.execute(select(AlertRecipient).where(AlertRecipient.alert_id.in_(wanted),
                                                             AlertRecipient.person_id == actor.person_id)).scalars())
    if len(rows) != len(wanted):
        raise NotFound("some of these alerts did not reach you")
    now = clock.now()
    changed = []
    for row in rows:
        before = (row.delivered_at, row.read_at)
        row.delivered_at = row.delivered_at or now
        if state == "read":
            row.read_at = row.read_at or now
        if before != (row.delivered_at, row.read_at):
            changed.append(row.alert_id)
    if changed:
        audit.record(session=session, clock=clock, actor=actor, action=f"alert.{state}", object_type="person",
                     object_id=actor.person_id, detail={"alert_ids": sorted(changed)})
    return len(changed)


def respond(*, session: Session, clock: Clock, actor: Actor, alert_id: int, choice: str) -> Alert:
    """Accept or call back acknowledges; reject escalates at once to the next step."""
    normalized = choice.strip().lower()
    if normalized in (ACCEPT, CALL_BACK, "callback"):
        return acknowledge(session=session, clock=clock, actor=actor, alert_id=alert_id,
                           response=CALL_BACK if normalized != ACCEPT else ACCEPT)
    if normalized != REJECT:
        raise Invalid("choice must be accept, reject or call back", field="choice")
    alert = access_alert(session=session, actor=actor, alert_id=alert_id)
    if actor.person_id is None:
        raise Forbidden("only a person can reject")
    if alert.status != AlertStatus.OPEN:
        raise Invalid(f"the alert is already {alert.status}", field="choice")
    _record_response(session, clock, alert, actor.person_id, REJECT)
    engine.event(session, clock, alert, "rejected", actor.person_id)
    audit.record(session=session, clock=clock, actor=actor, action="alert.reject", object_type="alert",
                 object_id=alert.id)
    engine.escalate_now(session=session, clock=clock, alert=alert, why=f"rejected by {actor.username}", actor=actor)
    return alert


def record_readback(*, session: Session, clock: Clock, actor: Actor, alert_id: int, text: str) -> Alert:
    """The closed loop for critical results: the acknowledger records what was read back."""
    alert = access_alert(session=session, actor=actor, alert_id=alert_id)
    if alert.status == AlertStatus.OPEN:
        raise Invalid("acknowledge the alert before recording the read-back", field="text")
    if alert.acknowledged_by != actor.person_id:
        raise Forbidden("the read-back is recorded by the person who acknowledged")
    if not text.strip():
        raise Invalid("the read-back is empty", field="text")
    alert.readback = text
    alert.readback_at = clock.now()
    alert.status = AlertStatus.CLOSED
    engine.event(session, clock, alert, "readback", actor.person_id, text=text)
    audit.record(session=session, clock=clock, actor=actor, action="alert.readback", object_type="alert",
                 object_id=alert.id)
    _changed(session, clock, alert)
    return alert


def my_alerts(*, session: Session, actor: Actor, open_only: bool = True, limit: int = 100) -> list[Alert]:
    if actor.person_id is None:
        return []
    query = (select(Alert).join(AlertRecipient, AlertRecipient.alert_id == Alert.id)
             .where(AlertRecipient.person_id == actor.person_id).order_by(Alert.created_at.desc()).limit(limit))
    if open_only:
        query = query.where(Alert.status == AlertStatus.OPEN)
    return list(session.execute(query).scalars())


def trail(*, session: Session, clock: Clock, actor: Actor, alert_id: int) -> tuple[Alert, list[AlertEvent]]:
    alert = access_alert(session=session, actor=actor, alert_id=alert_id)
    mine = session.get(AlertRecipient, (alert_id, actor.person_id)) if actor.person_id is not None else None
    if mine is not None and mine.read_at is None:
        mine.read_at = clock.now()
        mine.delivered_at = mine.delivered_at or mine.read_at
    events = list(session.execute(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                  .order_by(AlertEvent.id)).scalars())
    audit.record(session=session, clock=clock, actor=actor, action="alert.read", object_type="alert",
                 object_id=alert_id, detail={"patient_id": alert.patient_id})
    return alert, events
