"""Raising alerts and closing the loop: acknowledge, accept / reject / call back, read-back.

Privacy rule (1): an alert's details and trail are visible to the people it reached and to the
roles that run the system (operators, integration admins, compliance officers); others get
"not found".
Rule (2): only the people it reached act on it (acknowledge, accept, reject, call back): seeing an
alert is oversight, answering it stops or moves an escalation, which is the care team's to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts.models import Alert, AlertEvent, AlertRecipient, AlertStatus
from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import CarerelayError, Forbidden, Invalid, NotFound
from carerelay.core.prepared import PreparedInsert
from carerelay.escalation import engine
from carerelay.realtime import service as realtime
from carerelay.routing.resolver import check_address, department_of, resolve
from carerelay.routing.rules import sender_type_of

OVERSEERS = frozenset({"operator", "integration_admin", "compliance_officer", "system_admin"})
ACCEPT, REJECT, CALL_BACK = "accept", "reject", "call back"
_INSERT_ALERT = PreparedInsert(Alert)

AckHook = Callable[[Session, Clock, Alert, int], None]
ACK_HOOKS: dict[str, AckHook] = {}
"""Per alert kind: what else an acknowledgement means (a message's receipt, a WCTP reply…)."""


def on_acknowledge(kind: str) -> Callable[[AckHook], AckHook]:
    def register(fn: AckHook) -> AckHook:
        ACK_HOOKS[kind] = fn
        return fn

    return register


ResponseHook = Callable[[Session, Clock, Alert, int, str], None]
RESPONSE_HOOKS: dict[str, ResponseHook] = {}
"""Per alert source: what a recipient's answer means to the system that raised it (a WCTP
MessageReply to the nurse-call server). Called with the person and the choice as they chose it."""

ReceiptHook = Callable[[Session, Clock, Alert, int, str], None]
RECEIPT_HOOKS: dict[str, ReceiptHook] = {}
"""Per alert source: an alert reached a device (delivered) or was opened (read)."""


def on_response(source: str) -> Callable[[ResponseHook], ResponseHook]:
    def register(fn: ResponseHook) -> ResponseHook:
        RESPONSE_HOOKS[source] = fn
        return fn

    return register


def on_receipt(source: str) -> Callable[[ReceiptHook], ReceiptHook]:
    def register(fn: ReceiptHook) -> ReceiptHook:
        RECEIPT_HOOKS[source] = fn
        return fn

    return register


def raise_alert(
    *, session: Session, clock: Clock, actor: Actor, kind: str, priority: str, title: str, body: str, address: str,
    source: str, source_ref: str | None = None, patient_id: int | None = None, department_id: int | None = None,
    location: str | None = None, choices: Sequence[str] = (), data: dict[str, Any] | None = None,
    escalation: dict[str, Any] | None = None,
) -> Alert:
    """Store the alert and start its escalation in the same transaction: an alert never sits unrouted.

    ``escalation`` (steps, repeat, fallback) replaces the policy lookup for this one alert: an
    integration's own rule says how its event escalates.
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
    _INSERT_ALERT.add(session, alert)
    audit.record(session=session, clock=clock, actor=actor, action="alert.raise", object_type="alert",
                 object_id=alert.id, detail={"kind": kind, "priority": priority, "address": address,
                                             "patient_id": patient_id})
    engine.start(session=session, clock=clock, alert=alert, plan=escalation,
                 raised=("raised", actor.person_id, {"source": source, "address": address}))
    return alert


def first_reachable(*, session: Session, at: datetime, addresses: Sequence[str]) -> tuple[str | None, list[str]]:
    """The first of these addresses that reaches someone at ``at`` (else the last usable one, so the
    escalation's "never nobody" takes over), with a note for each one passed over."""
    notes: list[str] = []
    usable: str | None = None
    for address in addresses:
        try:
            resolution = resolve(session, address, at)
        except CarerelayError as exc:
            notes.append(f"{address} cannot be reached: {exc.message}.")
            continue
        usable = address
        if not resolution.empty:
            return address, notes
        notes.append(f"{address} reaches no one now ({resolution.explain()}).")
    return usable, notes


def access_alert(*, session: Session, actor: Actor, alert_id: int) -> Alert:
    """(1) An alert the caller may read: one that reached them, or any for the overseeing roles."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if actor.roles & OVERSEERS:
        return alert
    if actor.person_id is None or session.get(AlertRecipient, (alert_id, actor.person_id)) is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def access_alert_to_answer(*, session: Session, actor: Actor, alert_id: int) -> Alert:
    """(2) An alert the caller may answer: one that reached them. An overseer who can read it but was
    not reached is told so, rather than "not found", since they can see it exists."""
    alert = access_alert(session=session, actor=actor, alert_id=alert_id)
    if actor.person_id is None or session.get(AlertRecipient, (alert_id, actor.person_id)) is None:
        raise Forbidden("only the people this alert reached can answer it")
    return alert


def _changed(session: Session, clock: Clock, alert: Alert) -> None:
    recipients = list(session.execute(select(AlertRecipient.person_id)
                                      .where(AlertRecipient.alert_id == alert.id)).scalars())
    realtime.emit(session=session, clock=clock, person_ids=recipients, kind="alert.changed",
                  payload=engine.alert_json(alert) | {"acknowledged_by": alert.acknowledged_by})


def acknowledge(*, session: Session, clock: Clock, actor: Actor, alert_id: int, response: str = ACCEPT,
                choice: str | None = None) -> Alert:
    alert = access_alert_to_answer(session=session, actor=actor, alert_id=alert_id)
    return acknowledge_alert(session=session, clock=clock, actor=actor, alert=alert, response=response, choice=choice)


def acknowledge_alert(*, session: Session, clock: Clock, actor: Actor, alert: Alert, response: str = ACCEPT,
                      choice: str | None = None) -> Alert:
    """For callers that already checked the right to (a message's recipient acknowledging it).
    ``choice``: the answer as the person picked it ("Call back", "On my way"), for the raising system."""
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
    answered = RESPONSE_HOOKS.get(alert.source)
    if answered is not None:
        answered(session, clock, alert, actor.person_id, choice or _as_chosen(alert, response))
    _changed(session, clock, alert)
    return alert


def _as_chosen(alert: Alert, response: str) -> str:
    """The alert's own wording of a response (its choice "Call back" for "call back")."""
    for offered in alert.choices:
        if offered.strip().lower() == response:
            return offered
    return response


def _action_of(alert: Alert, choice: str) -> str:
    """accept | reject | call back for a choice; an integration may name its own choices' meaning."""
    normalized = choice.strip().lower()
    if normalized in (ACCEPT, REJECT, CALL_BACK):
        return normalized
    if normalized == "callback":
        return CALL_BACK
    actions = alert.data.get("choice_actions") or {}
    return str(actions.get(normalized, normalized))


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


def respond(*, session: Session, clock: Clock, actor: Actor, alert_id: int, choice: str) -> Alert:
    """Accept or call back acknowledges; reject escalates at once to the next step."""
    alert = access_alert_to_answer(session=session, actor=actor, alert_id=alert_id)
    action = _action_of(alert, choice)
    offered = next((c for c in alert.choices if c.strip().lower() == choice.strip().lower()), None)
    if action in (ACCEPT, CALL_BACK):
        return acknowledge_alert(session=session, clock=clock, actor=actor, alert=alert, response=action,
                                 choice=offered)
    if action != REJECT:
        raise Invalid("choice must be accept, reject or call back", field="choice")
    if actor.person_id is None:
        raise Forbidden("only a person can reject")
    if alert.status != AlertStatus.OPEN:
        raise Invalid(f"the alert is already {alert.status}", field="choice")
    _record_response(session, clock, alert, actor.person_id, REJECT)
    engine.event(session, clock, alert, "rejected", actor.person_id)
    audit.record(session=session, clock=clock, actor=actor, action="alert.reject", object_type="alert",
                 object_id=alert.id)
    answered = RESPONSE_HOOKS.get(alert.source)
    if answered is not None:
        answered(session, clock, alert, actor.person_id, offered or _as_chosen(alert, REJECT))
    engine.escalate_now(session=session, clock=clock, alert=alert, why=f"rejected by {actor.username}", actor=actor)
    return alert


def record_receipts(*, session: Session, clock: Clock, actor: Actor, alert_ids: Sequence[int], state: str) -> int:
    """A device showed (delivered) or its person opened (read; implies delivered) these alerts.

    Only the first time counts: it is what time-to-deliver and time-to-read reports measure, it goes
    in the trail and it is told to the raising system (WCTP StatusInfo); repeats are no-ops, so a
    reconnecting device can send them again. Alerts that never reached the caller are "not found",
    like everywhere else. Returns how many receipts were new.
    """
    if state not in RECEIPT_STATES:
        raise Invalid(f"state must be one of {', '.join(RECEIPT_STATES)}", field="state")
    if actor.person_id is None:
        raise Forbidden("only a person's device sends receipts")
    wanted = list(dict.fromkeys(alert_ids))
    rows = {row.alert_id: row for row in session.execute(
        select(AlertRecipient).where(AlertRecipient.alert_id.in_(wanted),
                                     AlertRecipient.person_id == actor.person_id)).scalars()}
    if len(rows) != len(wanted):
        raise NotFound("some of these alerts did not reach you")
    now = clock.now()
    new = 0
    changed: list[int] = []
    for alert_id in wanted:
        row = rows[alert_id]
        states = [s for s, seen in (("delivered", row.delivered_at), ("read", row.read_at))
                  if seen is None and (s == "delivered" or state == "read")]
        if not states:
            continue
        alert = session.get_one(Alert, alert_id)
        row.delivered_at = row.delivered_at or now
        if state == "read":
            row.read_at = row.read_at or now
        hook = RECEIPT_HOOKS.get(alert.source)
        for reached in states:
            engine.event(session, clock, alert, reached, actor.person_id)
            if hook is not None:
                hook(session, clock, alert, actor.person_id, reached)
            new += 1
        changed.append(alert_id)
    if changed:
        audit.record(session=session, clock=clock, actor=actor, action=f"alert.{state}", object_type="person",
                     object_id=actor.person_id, detail={"alert_ids": changed})
    return new


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


def note(*, session: Session, clock: Clock, alert_id: int, kind: str, person_id: int | None = None,
         **detail: Any) -> None:
    """Add a fact to an alert's trail from outside the closed loop (a pager's StatusInfo, a failed reply)."""
    alert = session.get(Alert, alert_id)
    if alert is not None:
        engine.event(session, clock, alert, kind, person_id, **detail)
